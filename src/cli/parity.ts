import { Gpu } from '../gpu/gpu.ts';
import { formatParity, parityExitCode, runParity } from '../parity/run.ts';

export async function parityCommand(dirs: string[], json: boolean): Promise<number> {
  const opened: { gpu?: Promise<Gpu> } = {};
  const open = () => (opened.gpu ??= Gpu.open());
  let code = 0;
  const results = [];
  for (const dir of dirs) {
    const r = await runParity(open, dir);
    results.push(r);
    code = Math.max(code, parityExitCode(r));
    if (!json) process.stdout.write(`${formatParity(r)}\n`);
  }
  if (json) process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
  if (opened.gpu) (await opened.gpu).destroy();
  return code;
}
