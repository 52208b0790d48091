// `kandinsky image "<prompt>" --out x.png`: Kandinsky 3.0 text to image, with
// progress on stderr and the PNG written atomically.
import { UsageError } from '../errors.ts';
import { type ImageOptions, generateImage } from '../pipeline/image.ts';
import { checkOutputPath, writeVideo } from '../video/write.ts';
import { runInterruptible, timingLines } from './generate.ts';

export interface ImageCliOptions extends Omit<ImageOptions, 'onProgress' | 'signal'> {
  out: string;
  force: boolean;
  json: boolean;
}

export async function runImage(o: ImageCliOptions): Promise<number> {
  if (!/\.png$/i.test(o.out)) throw new UsageError(`image: --out must name a .png file, got '${o.out}'`);
  await checkOutputPath(o.out, o.force);
  return runInterruptible(o.out, async (signal, progress) => {
    const r = await generateImage({ ...o, onProgress: progress.update, signal });
    progress.end();
    signal.throwIfAborted();
    await writeVideo(o.out, [r.image], { fps: 1, force: o.force });
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ out: o.out, width: r.width, height: r.height, layout: r.layout, timings: r.timings, peakBytes: r.peakBytes }, null, 2)}\n`);
    } else {
      process.stdout.write(`${[`wrote ${r.width}x${r.height} image to ${o.out} (${r.layout} weights)`, ...timingLines(r.timings, r.peakBytes)].join('\n')}\n`);
    }
  });
}
