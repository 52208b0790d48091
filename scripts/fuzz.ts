// `npm run fuzz -- --minutes N [--seed S]`: the CI fuzz targets for longer,
// splitting the time between them; exits 1 if any input broke a reader.
import { describeReport, fuzz, fuzzTargets } from '../test/fuzz/engine.ts';

const args = process.argv.slice(2);
const flag = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const minutes = flag('minutes', 1);
const seed = flag('seed', Date.now() % 2 ** 31);
const targets = fuzzTargets();
let failed = false;
for (const target of targets) {
  const deadline = Date.now() + (minutes * 60_000) / targets.length;
  const r = await fuzz(target, { count: Number.MAX_SAFE_INTEGER, seed, deadline, maxMsPerInput: 2000 });
  console.log(`${describeReport(r)}\n  failures ${r.failures.length}`);
  for (const f of r.failures.slice(0, 10)) console.log(`  FAILURE ${f.error}\n    input: ${JSON.stringify(f.input)}`);
  failed ||= r.failures.length > 0;
}
console.log(`seed ${seed}`);
process.exit(failed ? 1 : 0);
