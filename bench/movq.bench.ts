// MoVQ decode benchmark: one 256×256 frame (32×32 latent) through the real
// image-MoVQ decoder (spec §5: ch 256, ch_mult 1,2,2,4, 2 res blocks,
// attention at 32), random weights. MOVQ_SIDE=512 decodes a 512×512 frame
// instead, whose top level (512 MiB a frame) runs as bands of rows on an
// adapter with 128 MiB bindings (src/models/movq/bands.ts). flops are counted from the config
// (src/models/movq/cost.ts: convs, the 1×1 q/k/v/proj_out linears and the
// attention products; norms and elementwise ops not counted). The variant
// reports the pool's peak GPU bytes (weights + activations) once measured.
//
// Peer: test/reference/bench_movq_torch.py, the same decode in PyTorch on this
// CPU (Debian's /usr/bin/python3, torch 1.13, 2 threads), kept running as a
// child process that decodes once per "run" line; the harness times the round
// trip. Without /usr/bin/python3 + torch the peer reports why. It decodes
// 256×256 only, so other sizes run without it.
//
// MOVQ_PROFILE=1 also prints where the time goes: one decode's dispatches are
// recorded, then replayed one at a time with a device sync after each, and
// the times are summed per kernel entry point.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Gpu } from '../src/gpu/gpu.ts';
import { IMAGE_MOVQ } from '../src/models/movq/config.ts';
import { decodeCost } from '../src/models/movq/cost.ts';
import { MoVQ } from '../src/models/movq/movq.ts';
import type { WeightDType } from '../src/nn/weights.ts';
import { tidy } from '../src/tensor/scope.ts';
import { Tensor, numel } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchRun } from './harness.ts';

/** Side of the decoded frame: a multiple of 8 (the decoder's factor). */
const SIDE = Number(process.env.MOVQ_SIDE ?? 256);
if (!Number.isInteger(SIDE) || SIDE < 8 || SIDE % 8 !== 0) throw new Error(`MOVQ_SIDE must be a multiple of 8, got '${process.env.MOVQ_SIDE}'`);
const LATENT = [1, 4, SIDE / 8, SIDE / 8];
const MiB = 1024 * 1024;
const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = new URL('../test/reference/bench_movq_torch.py', import.meta.url).pathname;

/** Deterministic uniform values in [−a, a) (mulberry32). */
function uniform(n: number, a: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = a * ((((t ^ (t >>> 14)) >>> 0) / 2 ** 31) - 1);
  }
  return out;
}

/**
 * Random weights that keep activations O(1), as the reference's init_params:
 * kernels ±√(3/fan_in), biases small, GroupNorm weights 1, conv_y ≈ 1.
 */
function randomWeights(gpu: Gpu, model: MoVQ, dtype: WeightDType): number {
  let bytes = 0;
  model.params().forEach((p, i) => {
    const n = numel(p.shape);
    const leaf = p.key.split('.').at(-1)!;
    const parent = p.key.split('.').at(-2)!;
    let data: Float32Array;
    if (parent === 'norm_layer' && leaf === 'weight') data = new Float32Array(n).fill(1);
    else if (parent === 'conv_y' && leaf === 'bias') data = new Float32Array(n).fill(1);
    else if (leaf === 'bias' || parent === 'norm_layer') data = uniform(n, 0.1, i + 1);
    else {
      const fanIn = n / p.shape[0];
      data = uniform(n, Math.sqrt(3 / fanIn) * (parent === 'conv_y' || parent === 'conv_b' ? 0.2 : 1), i + 1);
    }
    const t = Tensor.from(gpu, data, p.shape, dtype === 'f16' && p.allowF16 ? 'f16' : 'f32', { persistent: true });
    bytes += t.byteLength;
    p.set(t);
  });
  return bytes;
}

/** The PyTorch peer as a child process: resolves once its model is built. */
async function torchPeer(): Promise<{ run: () => Promise<void>; close: () => void }> {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found (the peer needs Debian's python3 with python3-torch)`);
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, [TORCH_SCRIPT, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new Error(`the torch peer exited: ${stderr.trim().split('\n').at(-1) ?? 'no output'}`);
    return r.value;
  };
  const first = await nextLine();
  if (!first.startsWith('ready')) throw new Error(`the torch peer said '${first}'`);
  return {
    run: async () => {
      child.stdin.write('run\n');
      const line = await nextLine();
      if (!line.startsWith('done')) throw new Error(`the torch peer said '${line}'`);
    },
    close: () => {
      child.stdin.end();
      child.kill();
    },
  };
}

interface Recorded {
  call: Parameters<Gpu['dispatch']>[0];
  bindings: Parameters<Gpu['dispatch']>[1];
  workgroups: Parameters<Gpu['dispatch']>[2];
}

/** Times each dispatch of one decode on its own; prints ms per kernel entry. */
async function profile(gpu: Gpu, decode: () => void): Promise<void> {
  const recorded: Recorded[] = [];
  const dispatch = gpu.dispatch.bind(gpu);
  gpu.dispatch = (call, bindings, workgroups) => {
    recorded.push({ call, bindings, workgroups });
    dispatch(call, bindings, workgroups);
  };
  try {
    decode();
  } finally {
    gpu.dispatch = dispatch;
  }
  await gpu.sync();
  const byEntry = new Map<string, { ms: number; n: number }>();
  let total = 0;
  for (const r of recorded) {
    const t0 = performance.now();
    dispatch(r.call, r.bindings, r.workgroups);
    await gpu.sync();
    const ms = performance.now() - t0;
    total += ms;
    const key = `${r.call.kernel}:${r.call.entry ?? 'main'}`;
    const e = byEntry.get(key) ?? { ms: 0, n: 0 };
    byEntry.set(key, { ms: e.ms + ms, n: e.n + 1 });
  }
  const rows = [...byEntry].sort((a, b) => b[1].ms - a[1].ms);
  process.stderr.write(`\nmovq_decode profile: ${recorded.length} dispatches, ${total.toFixed(0)} ms replayed one by one\n`);
  for (const [key, e] of rows) process.stderr.write(`  ${key.padEnd(32)} ${e.ms.toFixed(0).padStart(8)} ms  ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  (${e.n} dispatches)\n`);
}

function decodeCase(dtype: WeightDType): BenchCase {
  const cost = decodeCost(IMAGE_MOVQ, 1, LATENT[2], LATENT[3]);
  const base = `real image MoVQ decoder (ch 256, mult 1,2,2,4), ${dtype} weights, latent ${LATENT[2]}x${LATENT[3]}`;
  let peak = '';
  return {
    op: 'movq_decode',
    explicit: true,
    shape: `${SIDE}x${SIDE}`,
    dtype: 'f32',
    // Read by the runner after timing, so it can carry the measured peak.
    get variant() {
      return base + peak;
    },
    flops: cost.flops,
    async setup(gpu): Promise<BenchRun> {
      const model = new MoVQ(IMAGE_MOVQ, { encoder: false });
      const weightBytes = randomWeights(gpu, model, dtype);
      const quant = Tensor.from(gpu, uniform(numel(LATENT), 1, 7), LATENT);
      const decode = () => tidy(() => model.decode(quant)).dispose();
      if (process.env.MOVQ_PROFILE === '1') await profile(gpu, decode);
      let peer: Awaited<ReturnType<typeof torchPeer>> | null = null;
      let peerError = '';
      if (SIDE === 256) {
        try {
          peer = await torchPeer();
        } catch (e) {
          peerError = (e as Error).message;
        }
      }
      gpu.pool.resetPeak();
      return {
        run: () => {
          decode();
          const s = gpu.pool.stats();
          peak = `, peak GPU ${(s.peakDeviceBytes / MiB).toFixed(0)} MiB (weights ${(weightBytes / MiB).toFixed(0)} MiB)`;
        },
        peers:
          SIDE === 256
            ? {
                'torch 1.13 cpu f32, 2 threads': async () => {
                  if (!peer) throw new Error(peerError);
                  await peer.run();
                },
              }
            : {},
        dispose: () => {
          peer?.close();
          quant.dispose();
          model.release();
        },
      };
    },
  };
}

export const benches: BenchCase[] = [decodeCase('f32')];
