// tfjs-webgpu as a side-by-side peer (issue #3): its matmul and conv2d on the
// same shapes, on the same GPUDevice as ours (so the same adapter and queue,
// and our gpu.sync() waits for its work too). A devDependency, used only here.
import type { Gpu } from '../../src/gpu/gpu.ts';

/** The parts of @tensorflow/tfjs-core the bench uses. */
interface TfTensor {
  dispose(): void;
}
interface Tf {
  registerBackend(name: string, factory: () => unknown, priority?: number): boolean;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  backend(): { submitQueue(): void };
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

/** tfjs-webgpu on our device; rejects with the reason when it cannot run here. */
export function tfjsPeer(gpu: Gpu): Promise<TfjsPeer> {
  peer ??= load(gpu);
  return peer;
}

async function load(gpu: Gpu): Promise<TfjsPeer> {
  // tfjs checks for navigator.gpu before it builds a WebGPU backend; Node has
  // no navigator, so give it one that names our device's GPU.
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...g.navigator, gpu: {} }, configurable: true });
  let tf: Tf;
  let backend: { WebGPUBackend: new (device: GPUDevice, info?: unknown) => unknown };
  try {
    tf = (await import('@tensorflow/tfjs-core')) as unknown as Tf;
    backend = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as typeof backend;
  } catch (e) {
    throw new Error(`not installed (npm install): ${(e as Error).message.split('\n')[0]}`);
  }
  tf.registerBackend('webgpu-shared', () => new backend.WebGPUBackend(gpu.device, gpu.device.adapterInfo));
  if (!(await tf.setBackend('webgpu-shared'))) throw new Error('its WebGPU backend failed to initialise');
  await tf.ready();
  const op = (inputs: TfTensor[], f: () => TfTensor) => ({
    async run() {
      f().dispose();
      tf.backend().submitQueue();
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
export async function peerOf(gpu: Gpu, make: (p: TfjsPeer) => { run(): Promise<void>; dispose(): void }): Promise<{ peers: Record<string, () => Promise<void>>; dispose(): void }> {
  try {
    const op = make(await tfjsPeer(gpu));
    return { peers: { 'tfjs-webgpu': () => op.run() }, dispose: () => op.dispose() };
  } catch (e) {
    const reason = (e as Error).message;
    return { peers: { 'tfjs-webgpu': () => Promise.reject(new Error(reason)) }, dispose: () => {} };
  }
}
