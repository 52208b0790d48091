// `kandinsky generate` and `kandinsky demo`: progress on stderr (one updating
// line on a terminal, plain lines otherwise), the video written atomically.
import { KandinskyError, UsageError } from '../errors.ts';
import { type FrameRate, type GenerateOptions, type GenerateResult, generateVideo } from '../pipeline/generate.ts';
import type { StageProgress, StageTimingOf } from '../pipeline/stages.ts';
import { checkOutputPath, videoFormat, writeVideo } from '../video/write.ts';

export interface GenerateCliOptions extends Omit<GenerateOptions, 'onProgress' | 'signal'> {
  out: string;
  force: boolean;
  json: boolean;
}

export function parseSize(size: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(size);
  if (!m) throw new UsageError(`--size must be WIDTHxHEIGHT, e.g. 512x512, got '${size}'`);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width % 64 || height % 64 || !width || !height) throw new UsageError(`--size ${size}: width and height must be positive multiples of 64`);
  return { width, height };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export interface ProgressPrinter {
  update: (p: StageProgress) => void;
  /** Ends the progress display (idempotent): call before printing anything else. */
  end: () => void;
}

function progressPrinter(): ProgressPrinter {
  const tty = Boolean(process.stderr.isTTY);
  let current = '';
  let lastPlain = -1;
  return {
    update(p) {
      const eta = p.done > 0 ? (p.elapsedMs / p.done) * (p.total - p.done) : NaN;
      const line = `[${p.stage}] ${p.done}/${p.total}  elapsed ${seconds(p.elapsedMs)}${Number.isFinite(eta) ? `  ETA ${seconds(eta)}` : ''}`;
      if (tty) {
        if (p.stage !== current && current) process.stderr.write('\n');
        process.stderr.write(`\r${line}\x1b[K`);
      } else {
        // Plain lines: the start, every 10 %, and the end of each stage.
        const tenth = Math.floor((10 * p.done) / Math.max(1, p.total));
        if (p.stage !== current || tenth !== lastPlain) process.stderr.write(`${line}\n`);
        lastPlain = tenth;
      }
      current = p.stage;
    },
    end() {
      if (tty && current) process.stderr.write('\n');
      current = '';
    },
  };
}

/** One line per stage and a total: time and peak device memory. */
export function timingLines(timings: readonly StageTimingOf[], peakBytes: number): string[] {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return [
    ...timings.map((t) => `  ${t.stage.padEnd(16)} ${seconds(t.ms).padStart(9)}   peak ${mib(t.peakBytes)}`),
    `  ${'total'.padEnd(16)} ${seconds(timings.reduce((s, t) => s + t.ms, 0)).padStart(9)}   peak ${mib(peakBytes)}`,
  ];
}

export function summary(r: GenerateResult, out: string): string {
  return [`wrote ${r.frames.length} frames (${r.width}x${r.height}, ${r.fps} fps) to ${out}`, ...timingLines(r.timings, r.peakBytes)].join('\n');
}

/**
 * Runs a pipeline with progress on stderr; Ctrl-C aborts it cleanly, and
 * `run` writes its output only if it was not interrupted (ending the
 * progress display first). Exit code 130 after an interruption, with nothing
 * written to `out`.
 */
export async function runInterruptible(out: string, run: (signal: AbortSignal, progress: ProgressPrinter) => Promise<void>): Promise<number> {
  const abort = new AbortController();
  const onSigint = () => abort.abort(new KandinskyError('interrupted'));
  process.once('SIGINT', onSigint);
  const printer = progressPrinter();
  try {
    await run(abort.signal, printer);
    printer.end();
    return 0;
  } catch (e) {
    printer.end();
    if (abort.signal.aborted) {
      process.stderr.write(`kandinsky: interrupted; nothing was written to ${out}\n`);
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Runs the pipeline; Ctrl-C stops it cleanly and nothing is written. */
export async function runGenerate(o: GenerateCliOptions): Promise<number> {
  videoFormat(o.out);
  await checkOutputPath(o.out, o.force);
  return runInterruptible(o.out, async (signal, progress) => {
    const result = await generateVideo({ ...o, onProgress: progress.update, signal });
    progress.end();
    signal.throwIfAborted();
    await writeVideo(o.out, result.frames, { fps: result.fps, force: o.force });
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ out: o.out, frames: result.frames.length, width: result.width, height: result.height, fps: result.fps, timings: result.timings, peakBytes: result.peakBytes }, null, 2)}\n`);
    } else {
      process.stdout.write(`${summary(result, o.out)}\n`);
    }
  });
}

export const FPS_CHOICES: readonly FrameRate[] = ['low', 'medium', 'high'];
