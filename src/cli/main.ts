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
  bench [filter...] [--json] [--quick]            kernel and model benchmarks ("bench pipeline": demo + projection)
  generate "<prompt>" --weights DIR --out FILE [--negative TEXT] [--fps low|medium|high]
           [--size 512x512] [--steps 50] [--guidance 5] [--interpolation-guidance 0.25]
           [--seed N] [--dtype f16|f32] [--decode-chunk N] [--decode-mode upstream|overlap]
           [--force] [--json]                     text to video (.mp4, .webp, .gif, .png, or a folder of PNG frames)
  image "<prompt>" --weights DIR --out x.png [--negative TEXT] [--size 1024x1024] [--steps 50]
        [--guidance 3] [--eta 1] [--seed N] [--dtype f16|f32] [--force] [--json]
                                                  Kandinsky 3.0 text to image (upstream or diffusers weights)
  demo [--out demo.gif] [--steps N] [--fps low|medium|high]
                                                  the whole pipeline on small untrained demo weights
  tokenize "<prompt>" --tokenizer DIR [--negative TEXT]
                                                  T5 token ids and attention mask as JSON
  encode "<prompt>" --text-encoder DIR --out emb.safetensors [--negative TEXT] [--dtype f16|f32]
         [--checkpoint kandinsky_video.pt]        run the text stage alone (with --checkpoint: projected context too)
  params unet --preset keyframe|interpolation|text_to_image [--json]
                                                  parameter and tensor counts of a configuration
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
  async tokenize(argv) {
    const { positional, flags } = parseArgs('tokenize', argv, { tokenizer: { type: 'string' }, negative: { type: 'string' } });
    if (positional.length !== 1 || !flags.tokenizer) throw new UsageError('tokenize: usage: kandinsky tokenize "<prompt>" --tokenizer DIR');
    const { tokenizeCommand } = await import('./text.ts');
    return tokenizeCommand(positional[0], flags.tokenizer as string, { negativePrompt: flags.negative as string | undefined });
  },
  async encode(argv) {
    const { positional, flags } = parseArgs('encode', argv, {
      'text-encoder': { type: 'string' },
      out: { type: 'string' },
      negative: { type: 'string' },
      dtype: { type: 'string', choices: ['f16', 'f32'], default: 'f32' },
      checkpoint: { type: 'string' },
    });
    if (positional.length !== 1 || !flags['text-encoder'] || !flags.out) {
      throw new UsageError('encode: usage: kandinsky encode "<prompt>" --text-encoder DIR --out emb.safetensors');
    }
    const { encodeCommand } = await import('./text.ts');
    return encodeCommand(positional[0], flags['text-encoder'] as string, flags.out as string, {
      negativePrompt: flags.negative as string | undefined,
      dtype: flags.dtype as 'f16' | 'f32',
      checkpoint: flags.checkpoint as string | undefined,
    });
  },
  async params(argv) {
    const { positional, flags } = parseArgs('params', argv, { preset: { type: 'string', default: 'keyframe' }, json: { type: 'boolean' } });
    if (positional.length !== 1) throw new UsageError('params: usage: kandinsky params unet --preset keyframe|interpolation|text_to_image');
    const { paramsCommand } = await import('./params.ts');
    return paramsCommand(positional[0], flags.preset as string, { json: Boolean(flags.json) });
  },
  async generate(argv) {
    const { positional, flags } = parseArgs('generate', argv, {
      negative: { type: 'string' },
      fps: { type: 'string', choices: ['low', 'medium', 'high'], default: 'medium' },
      size: { type: 'string', default: '512x512' },
      steps: { type: 'number', default: 50 },
      guidance: { type: 'number', default: 5 },
      'interpolation-guidance': { type: 'number', default: 0.25 },
      seed: { type: 'number', default: 0 },
      dtype: { type: 'string', choices: ['f16', 'f32'], default: 'f32' },
      weights: { type: 'string' },
      out: { type: 'string' },
      'decode-chunk': { type: 'number' },
      'decode-mode': { type: 'string', choices: ['upstream', 'overlap'], default: 'upstream' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positional.length !== 1) throw new UsageError('generate: give exactly one prompt (quote it)');
    if (!flags.weights) throw new UsageError('generate: --weights DIR is required (the release folder; see README)');
    if (!flags.out) throw new UsageError('generate: --out FILE is required (.mp4, .webp, .gif, .png or a folder/)');
    const { parseSize, runGenerate } = await import('./generate.ts');
    return runGenerate({
      prompt: positional[0],
      negativePrompt: flags.negative as string | undefined,
      fps: flags.fps as 'low' | 'medium' | 'high',
      ...parseSize(flags.size as string),
      steps: flags.steps as number,
      guidance: flags.guidance as number,
      interpolationGuidance: flags['interpolation-guidance'] as number,
      seed: flags.seed as number,
      dtype: flags.dtype as 'f16' | 'f32',
      weights: flags.weights as string,
      decodeChunkFrames: flags['decode-chunk'] as number | undefined,
      decodeChunkMode: flags['decode-mode'] as 'upstream' | 'overlap',
      out: flags.out as string,
      force: Boolean(flags.force),
      json: Boolean(flags.json),
    });
  },
  async image(argv) {
    const { positional, flags } = parseArgs('image', argv, {
      negative: { type: 'string' },
      size: { type: 'string', default: '1024x1024' },
      steps: { type: 'number', default: 50 },
      guidance: { type: 'number', default: 3 },
      eta: { type: 'number', default: 1 },
      seed: { type: 'number', default: 0 },
      dtype: { type: 'string', choices: ['f16', 'f32'], default: 'f32' },
      weights: { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positional.length !== 1) throw new UsageError('image: give exactly one prompt (quote it)');
    if (!flags.weights) throw new UsageError('image: --weights DIR is required (Kandinsky 3.0, upstream or diffusers layout; see README)');
    if (!flags.out) throw new UsageError('image: --out FILE.png is required');
    const { parseSize } = await import('./generate.ts');
    const { runImage } = await import('./image.ts');
    return runImage({
      prompt: positional[0],
      negativePrompt: flags.negative as string | undefined,
      ...parseSize(flags.size as string),
      steps: flags.steps as number,
      guidance: flags.guidance as number,
      eta: flags.eta as number,
      seed: flags.seed as number,
      dtype: flags.dtype as 'f16' | 'f32',
      weights: flags.weights as string,
      out: flags.out as string,
      force: Boolean(flags.force),
      json: Boolean(flags.json),
    });
  },
  async demo(argv) {
    const { flags } = parseArgs('demo', argv, {
      out: { type: 'string', default: 'demo.gif' },
      steps: { type: 'number', default: 12 },
      fps: { type: 'string', choices: ['low', 'medium', 'high'], default: 'high' },
      json: { type: 'boolean' },
    });
    const { demoCommand } = await import('./demo.ts');
    return demoCommand({ out: flags.out as string, steps: flags.steps as number, fps: flags.fps as 'low' | 'medium' | 'high', json: Boolean(flags.json) });
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
