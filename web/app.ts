// The web page: pick a weights folder or its files (or give a URL), type a prompt, watch
// each stage's progress and the frames as they are decoded, play the video
// and download it. Everything runs in this tab on WebGPU; weights are read
// from the picked files or the URL slice by slice, never whole.
//
// With ?cases=<base URL>&case=<name>&case=... the page instead runs those
// parity cases (test/fixtures/parity layout) and shows their verdicts.
// `window.kandinsky` holds the state (status, last result, parity results)
// for scripts that drive the page, such as test/runtimes/browser.test.ts.
import { DeviceLimitError, KandinskyError, NoAdapterError, ResourceError } from '../src/errors.ts';
import { Gpu } from '../src/gpu/gpu.ts';
import { type Folder, fileListFolder, urlFolder } from '../src/io/folder.ts';
import { decodeBindingNeed } from '../src/models/movq/cost.ts';
import { IMAGE_MOVQ, downFactor } from '../src/models/movq/config.ts';
import { type ParityResult, runParity } from '../src/parity/run.ts';
import { type FrameRate, type GenerateResult, type Progress, generateVideo } from '../src/pipeline/generate.ts';
import { releaseFromFiles } from '../src/pipeline/weightsFolder.ts';
import { setPackageRoot } from '../src/platform.ts';
import type { RgbFrame } from '../src/video/frames.ts';
import { encodeVideoFile, rgbToRgba } from './video.ts';

// The build copies kernels/ next to this bundle.
setPackageRoot(new URL('./', import.meta.url));

type Status = 'starting' | 'ready' | 'running' | 'done' | 'error' | 'unsupported';

interface PageState {
  status: Status;
  error?: string;
  result?: GenerateResult;
  parity?: ParityResult[];
}

const state: PageState = { status: 'starting' };
(window as unknown as { kandinsky: PageState }).kandinsky = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);

function setStatus(status: Status, error?: string): void {
  state.status = status;
  state.error = error;
  document.documentElement.dataset.status = status;
  $('error').textContent = error ?? '';
  input('generate').disabled = status !== 'ready' && status !== 'done' && status !== 'error';
  input('stop').disabled = status !== 'running';
}

let gpu: Gpu | undefined;

async function openGpu(): Promise<void> {
  const support = $('support');
  try {
    gpu = await Gpu.open();
    const a = gpu.info.adapter;
    support.textContent = `WebGPU: ${a.description || a.device || [a.vendor, a.architecture].filter(Boolean).join(' ') || 'adapter'}${gpu.info.software ? ' (software: expect minutes even for small sizes)' : ''}; largest binding ${(gpu.maxBinding / 2 ** 20).toFixed(0)} MiB.`;
    setStatus('ready');
    checkSize();
  } catch (e) {
    support.className = 'bad';
    support.textContent = e instanceof NoAdapterError ? `WebGPU is not available here. ${e.message}` : `WebGPU could not start: ${(e as Error).message}`;
    setStatus('unsupported', support.textContent);
  }
}

/** Warns when the release's decoder could not run at the chosen size on this adapter (levels past a binding run as bands; attention levels cannot). */
function checkSize(): void {
  if (!gpu) return;
  const side = Number(input('size').value);
  const latent = side / downFactor(IMAGE_MOVQ);
  const need = decodeBindingNeed(IMAGE_MOVQ, 1, latent, latent);
  $('support').classList.toggle('bad', need.bytes > gpu.maxBinding);
  const note = $('size-note') ?? Object.assign(document.createElement('p'), { id: 'size-note' });
  note.textContent =
    need.bytes > gpu.maxBinding
      ? `${side}x${side} is too large for this adapter: the decoder binds ${(need.bytes / 2 ** 20).toFixed(0)} MiB at once (${need.where}), the adapter allows ${(gpu.maxBinding / 2 ** 20).toFixed(0)} MiB. Choose a smaller size.`
      : '';
  $('support').after(note);
}

function weightsFolder(): Folder {
  const files = input('weights-dir').files;
  if (files && files.length) return fileListFolder(Array.from(files), files[0].webkitRelativePath.split('/')[0] || 'picked folder');
  const loose = input('weights-files').files;
  if (loose && loose.length) return releaseFromFiles(Array.from(loose));
  const url = input('weights-url').value.trim();
  if (url) return urlFolder(new URL(url, location.href));
  throw new KandinskyError('Pick the weights folder or its files, or give its URL, first.');
}

function stageRow(stage: string): HTMLElement {
  const id = `stage-${stage.replace(/\s+/g, '-')}`;
  let row = document.getElementById(id);
  if (!row) {
    row = Object.assign(document.createElement('div'), { id, className: 'stage' });
    row.append(Object.assign(document.createElement('span'), { textContent: stage }), document.createElement('progress'), document.createElement('span'));
    $('stages').append(row);
  }
  return row;
}

function showProgress(p: Progress): void {
  const row = stageRow(p.stage);
  const bar = row.children[1] as HTMLProgressElement;
  bar.max = p.total;
  bar.value = p.done;
  row.children[2].textContent = `${p.done}/${p.total}, ${(p.elapsedMs / 1000).toFixed(1)} s`;
}

function drawFrame(canvas: HTMLCanvasElement, frame: RgbFrame): void {
  canvas.width = frame.width;
  canvas.height = frame.height;
  canvas.getContext('2d')!.putImageData(new ImageData(rgbToRgba(frame), frame.width, frame.height), 0, 0);
}

function showFrame(frame: RgbFrame): void {
  const canvas = document.createElement('canvas');
  drawFrame(canvas, frame);
  $('frames').append(canvas);
}

let stopPlayer = () => {};

function play(result: GenerateResult): void {
  stopPlayer();
  const canvas = $<HTMLCanvasElement>('player');
  const button = $<HTMLButtonElement>('play');
  let i = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  const start = () => {
    timer = setInterval(() => drawFrame(canvas, result.frames[(i = (i + 1) % result.frames.length)]), 1000 / result.fps);
    button.textContent = 'Pause';
  };
  const pause = () => {
    clearInterval(timer);
    timer = undefined;
    button.textContent = 'Play';
  };
  button.onclick = () => (timer === undefined ? start() : pause());
  stopPlayer = pause;
  drawFrame(canvas, result.frames[0]);
  start();
  $('result').hidden = false;
}

async function download(result: GenerateResult): Promise<void> {
  const file = await encodeVideoFile(result.frames, result.fps);
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(file.blob), download: `kandinsky.${file.extension}` });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

let abort: AbortController | undefined;

async function generate(): Promise<void> {
  if (!gpu) return;
  stopPlayer();
  $('stages').replaceChildren();
  $('frames').replaceChildren();
  $('result').hidden = true;
  abort = new AbortController();
  setStatus('running');
  try {
    const side = Number(input('size').value);
    const result = await generateVideo({
      prompt: $<HTMLTextAreaElement>('prompt').value,
      negativePrompt: input('negative').value || undefined,
      weights: weightsFolder(),
      width: side,
      height: side,
      fps: input('fps').value as FrameRate,
      steps: Number(input('steps').value),
      guidance: Number(input('guidance').value),
      seed: Number(input('seed').value),
      gpu,
      onProgress: showProgress,
      onFrame: showFrame,
      signal: abort.signal,
    });
    state.result = result;
    play(result);
    const mp4 = typeof VideoEncoder !== 'undefined';
    $('download').textContent = `Download (${mp4 ? 'MP4' : 'GIF'})`;
    $('download').onclick = () => void download(result);
    setStatus('done');
  } catch (e) {
    if (abort.signal.aborted) return setStatus('ready', 'Stopped.');
    const message =
      e instanceof DeviceLimitError || e instanceof ResourceError
        ? `This adapter's limits are not enough for ${input('size').value}x${input('size').value}: ${e.message}`
        : e instanceof KandinskyError
          ? e.message
          : `Unexpected error: ${(e as Error).stack ?? e}`;
    setStatus('error', message);
  }
}

async function runParityCases(base: URL, names: string[]): Promise<void> {
  if (!gpu) return;
  $('parity').hidden = false;
  setStatus('running');
  const rows = $('parity').querySelector('tbody')!;
  state.parity = [];
  for (const name of names) {
    const r = await runParity(async () => gpu!, urlFolder(new URL(`${name}/`, base)));
    state.parity.push(r);
    const cells = r.status === 'error' ? [[name, '', '', '', `cannot run: ${r.error}`]] : r.outputs.map((o) => [name, o.name, o.max_abs_err.toExponential(3), o.tolerance.toExponential(3), o.pass ? 'PASS' : 'FAIL']);
    for (const c of cells) {
      const tr = document.createElement('tr');
      for (const text of c) tr.append(Object.assign(document.createElement('td'), { textContent: text }));
      rows.append(tr);
    }
  }
  setStatus('done');
}

$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  void generate();
});
$('stop').addEventListener('click', () => abort?.abort(new KandinskyError('stopped')));
input('size').addEventListener('change', checkSize);

const params = new URLSearchParams(location.search);
await openGpu();
const cases = params.get('cases');
if (cases && gpu) await runParityCases(new URL(cases, location.href), params.getAll('case'));
