// The `kandinsky` command line. Exit codes: 0 success, 1 failure (e.g. a
// parity tolerance), 2 usage or input errors.
import { KandinskyError, UsageError } from '../errors.ts';
import { parseArgs } from './args.ts';

type Command = (argv: string[]) => Promise<number>;

const HELP = `kandinsky <command> [options]

Commands:
  info [--json]                                   WebGPU adapter, backend, limits and features
  convert <in.pt|in.safetensors> <out.safetensors> [--dtype f16|f32]
                                                  convert a checkpoint without Python, tensor by tensor
  parity <case-dir>... [--json]                   run parity cases (../shared/design/parity-cases.md)
  bench [filter...] [--json] [--quick]            kernel microbenchmarks
  demo                                            the quick-start demo
  help                                            this text
`;

const commands: Record<string, Command> = {
  async help() {
    process.stdout.write(HELP);
    return 0;
  },
  async info(argv) {
    const { flags } = parseArgs('info', argv, { json: { type: 'boolean' } });
    const { infoCommand } = await import('./info.ts');
    return infoCommand(Boolean(flags.json));
  },
  async convert(argv) {
    const { positional, flags } = parseArgs('convert', argv, { dtype: { type: 'string', choices: ['f16', 'f32'] } });
    if (positional.length !== 2) throw new UsageError('convert: usage: kandinsky convert <in.pt|in.safetensors> <out.safetensors> [--dtype f16|f32]');
    const { convertCommand } = await import('./convert.ts');
    return convertCommand(positional[0], positional[1], flags.dtype as 'f16' | 'f32' | undefined);
  },
  async parity(argv) {
    const { positional, flags } = parseArgs('parity', argv, { json: { type: 'boolean' } });
    if (positional.length === 0) throw new UsageError('parity: usage: kandinsky parity <case-dir>... [--json]');
    const { parityCommand } = await import('./parity.ts');
    return parityCommand(positional, Boolean(flags.json));
  },
  async bench(argv) {
    const { positional, flags } = parseArgs('bench', argv, { json: { type: 'boolean' }, quick: { type: 'boolean' } });
    const { benchCommand } = await import('../../bench/run.ts');
    return benchCommand(positional, { json: Boolean(flags.json), quick: Boolean(flags.quick) });
  },
  async demo(argv) {
    parseArgs('demo', argv, {});
    const { demoCommand } = await import('./demo.ts');
    return demoCommand();
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name = 'help', ...rest] = argv;
  const command = commands[name === '--help' || name === '-h' ? 'help' : name];
  try {
    if (!command) throw new UsageError(`unknown command '${name}'\n\n${HELP}`);
    return await command(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kandinsky: ${e.message}\n`);
      return 2;
    }
    if (e instanceof KandinskyError) {
      process.stderr.write(`kandinsky: ${e.name}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
