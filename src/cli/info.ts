import { Gpu } from '../gpu/gpu.ts';

export async function infoCommand(json: boolean): Promise<number> {
  const gpu = await Gpu.open();
  const { info } = gpu;
  if (json) {
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  } else {
    const a = info.adapter;
    const lines = [
      `runtime:      ${info.runtimeVersion}`,
      `adapter:      ${a.description || a.device} (${a.vendor || 'unknown vendor'}, ${a.architecture || 'unknown architecture'})`,
      `kind:         ${info.software ? 'software (CPU) adapter' : 'hardware GPU'}`,
      `backend:      ${info.backend}`,
      `features:     ${info.features.join(', ')}`,
      'limits:',
      ...Object.entries(info.limits)
        .filter(([k]) => /Buffer|Workgroup|Invocations|Storage/.test(k))
        .map(([k, v]) => `  ${k.padEnd(40)} ${v}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  gpu.destroy();
  return 0;
}
