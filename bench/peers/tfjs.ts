// tfjs-webgpu as a side-by-side peer (issue #3): its matmul and conv2d on the
// same shapes and the same adapter (its own device from the same WebGPU entry
// point: sharing ours mixed its open compute passes with our submits). A
// devDependency, used only here.
import { webgpuEntry } from '../../src/gpu/device.ts';

/** The parts of @tensorflow/tfjs-core the bench uses. */
interface TfTensor {
  dispose(): void;
}
interface Tf {
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  backend(): { endComputePassEncoder(): void; submitQueue(): void; device: GPUDevice };
  randomUniform(shape: number[], min?: number, max?: number, dtype?: string, seed?: number): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA?: boolean, transposeB?: boolean): TfTensor;
  conv2d(x: TfTensor, filter: TfTensor, strides: number, pad: 'same' | 'valid'): TfTensor;
}

export interface TfjsPeer {
  /** One matmul [m,k]·[n,k]ᵀ per call (the bench's B layout). */
  matmul(m: number, n: number, k: number): { run(): Promise<void>; dispose(): void };
  /** One 'same' conv2d of an NHWC image (tfjs's layout) with an HWIO filter. */
  conv2d(c: number, o: number, h: number, w: number, k: number): { run(): Promise<void>; dispose(): void };
}

let peer: Promise<TfjsPeer> | undefined;

/** tfjs-webgpu on this runtime's adapter; rejects with the reason when it cannot run here. */
export function tfjsPeer(): Promise<TfjsPeer> {
  peer ??= load();
  return peer;
}

async function load(): Promise<TfjsPeer> {
  // tfjs opens its device through navigator.gpu, which Node lacks: give it
  // Dawn's entry point, ours.
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...g.navigator, gpu: await webgpuEntry() }, configurable: true });
  let tf: Tf;
  try {
    tf = (await import('@tensorflow/tfjs-core')) as unknown as Tf;
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    throw new Error(`not installed (npm install): ${(e as Error).message.split('\n')[0]}`);
  }
  if (!(await tf.setBackend('webgpu'))) throw new Error('its WebGPU backend failed to initialise');
  await tf.ready();
  const op = (inputs: TfTensor[], f: () => TfTensor) => ({
    async run() {
      f().dispose();
      const backend = tf.backend();
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
    },
    dispose: () => inputs.forEach((t) => t.dispose()),
  });
  return {
    matmul(m, n, k) {
      const a = tf.randomUniform([m, k], -1, 1, 'float32', 1);
      const b = tf.randomUniform([n, k], -1, 1, 'float32', 2);
      return op([a, b], () => tf.matMul(a, b, false, true));
    },
    conv2d(c, o, h, w, k) {
      const x = tf.randomUniform([1, h, w, c], -1, 1, 'float32', 1);
      const f = tf.randomUniform([k, k, c, o], -1, 1, 'float32', 2);
      return op([x, f], () => tf.conv2d(x, f, 1, 'same'));
    },
  };
}

/** A bench case's `peers` entry for tfjs-webgpu, or the reason it cannot run as the entry's error. */
export async function peerOf(make: (p: TfjsPeer) => { run(): Promise<void>; dispose(): void }): Promise<{ peers: Record<string, () => Promise<void>>; dispose(): void }> {
  try {
    const op = make(await tfjsPeer());
    return { peers: { 'tfjs-webgpu': () => op.run() }, dispose: () => op.dispose() };
  } catch (e) {
    const reason = (e as Error).message;
    return { peers: { 'tfjs-webgpu': () => Promise.reject(new Error(reason)) }, dispose: () => {} };
  }
}
