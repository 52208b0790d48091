// One entry point for a ready GPUDevice in Node (npm `webgpu`, Dawn), Deno
// (built-in navigator.gpu) and browsers.
import { NoAdapterError } from '../errors.ts';

export type Runtime = 'node' | 'deno' | 'browser';

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export interface DeviceInfo {
  runtime: Runtime;
  runtimeVersion: string;
  /** The native API under WebGPU, as far as the runtime tells. */
  backend: string;
  adapter: AdapterDescription;
  /** True for CPU rasterisers (lavapipe/llvmpipe, SwiftShader, WARP). */
  software: boolean;
  features: string[];
  limits: Record<string, number>;
}

export interface OpenDeviceOptions {
  /** Ask for a software (fallback) adapter even when a GPU exists. */
  forceFallbackAdapter?: boolean;
}

export interface OpenedDevice {
  device: GPUDevice;
  info: DeviceInfo;
}

declare const Deno: { version: { deno: string } } | undefined;

export function detectRuntime(): Runtime {
  if (typeof Deno !== 'undefined') return 'deno';
  if (typeof process !== 'undefined' && process.versions?.node && typeof window === 'undefined') return 'node';
  return 'browser';
}

// Limits raised to the adapter's maximum: models bind large weight matrices and
// the kernels use as much workgroup memory and storage bindings as offered.
const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  // Alignments: the adapter's (smaller) value is the better one.
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;

const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|warp|software/i;

/** How long Dawn's Node binding sleeps between polls of pending GPU work. */
const NODE_POLL_INTERVAL_MS = 1;

// Dawn's Node instance must outlive every device made from it: once collected,
// its event processing dereferences freed state and the process crashes.
let nodeInstance: GPU | null = null;

async function nodeGpu(): Promise<GPU> {
  if (nodeInstance) return nodeInstance;
  // Dawn warns on every start when the XDG runtime dir is unset.
  process.env.XDG_RUNTIME_DIR ??= (await import('node:os')).tmpdir();
  // Dawn's binding polls pending work with a setImmediate loop, which spins a
  // whole core while lavapipe's workers need it (71 vs 117 GFLOP/s measured).
  // It captures setImmediate when the native module loads, so a sleeping
  // stand-in is installed for the import only and the real one restored.
  const realSetImmediate = globalThis.setImmediate;
  const sleepingSetImmediate = (fn: (...a: unknown[]) => void, ...args: unknown[]) =>
    setTimeout(fn, NODE_POLL_INTERVAL_MS, ...args);
  (globalThis as { setImmediate: unknown }).setImmediate = sleepingSetImmediate;
  let mod: { create: (o: string[]) => GPU; globals: Record<string, unknown> };
  try {
    const name = 'webgpu';
    mod = await import(/* @vite-ignore */ name);
  } finally {
    globalThis.setImmediate = realSetImmediate;
  }
  // WebGPU constants (GPUBufferUsage, ...) are globals in browsers and Deno.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  nodeInstance = mod.create([]);
  return nodeInstance;
}

/** The runtime's WebGPU entry point (navigator.gpu, or Dawn's under Node), shared by every device opened here. */
export async function webgpuEntry(): Promise<GPU | undefined> {
  return detectRuntime() === 'node' ? nodeGpu() : (globalThis.navigator as Navigator | undefined)?.gpu;
}

function installHint(runtime: Runtime): string {
  if (runtime === 'browser') {
    return 'Use a browser with WebGPU enabled (Chrome 113+; on Linux start it with --enable-unsafe-webgpu).';
  }
  return [
    'Install a Vulkan driver. Without a GPU, Mesa 25 lavapipe from Debian bookworm-backports works:',
    '  sudo sh -c \'printf "Types: deb\\nURIs: http://deb.debian.org/debian\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n" > /etc/apt/sources.list.d/bookworm-backports.sources\'',
    '  sudo apt-get update && sudo apt-get install -y -t bookworm-backports mesa-vulkan-drivers',
    '(`npm run setup` does this when run as root with apt available.) Bookworm\'s own Mesa 22 lavapipe is refused by Dawn;',
    'SwiftShader from Debian\'s chromium package also works, 3-5x slower: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json',
  ].join('\n');
}

function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const i = adapter.info;
  return {
    vendor: i?.vendor ?? '',
    architecture: i?.architecture ?? '',
    device: i?.device ?? '',
    description: i?.description ?? '',
  };
}

function limitsRecord(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  // Supported-limits objects expose their fields as prototype getters.
  for (const key in limits) {
    const v = (limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') out[key] = v;
  }
  return out;
}

export async function openDevice(options: OpenDeviceOptions = {}): Promise<OpenedDevice> {
  const runtime = detectRuntime();
  let gpu: GPU | undefined;
  if (runtime === 'node') gpu = await nodeGpu();
  else gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new NoAdapterError(`WebGPU is not available in this ${runtime} runtime.\n${installHint(runtime)}`);

  // A hardware adapter is preferred; a software one is taken when it is all there is.
  let adapter: GPUAdapter | null = null;
  if (!options.forceFallbackAdapter) adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  adapter ??= await gpu.requestAdapter({ forceFallbackAdapter: true });
  if (!adapter) throw new NoAdapterError(`No WebGPU adapter was found (${runtime}).\n${installHint(runtime)}`);

  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const description = describeAdapter(adapter);
  // Chrome names SwiftShader only in the architecture ("swiftshader") and
  // reports isFallbackAdapter on the adapter's info, older runtimes on the adapter.
  const software =
    description.architecture === 'software' ||
    SOFTWARE_NAMES.test(`${description.architecture} ${description.device} ${description.description}`) ||
    Boolean((adapter.info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const info: DeviceInfo = {
    runtime,
    runtimeVersion: await runtimeVersion(runtime),
    backend: backendName(runtime),
    adapter: description,
    software,
    features: [...device.features].sort(),
    limits: limitsRecord(device.limits),
  };
  return { device, info };
}

async function runtimeVersion(runtime: Runtime): Promise<string> {
  if (runtime === 'deno') return `deno ${Deno!.version.deno}`;
  if (runtime === 'browser') return globalThis.navigator?.userAgent ?? 'browser';
  const { createRequire } = await import('node:module');
  const fs = await import('node:fs');
  const path = await import('node:path');
  const pkg = path.join(path.dirname(createRequire(import.meta.url).resolve('webgpu')), 'package.json');
  return `node ${process.versions.node}, webgpu ${JSON.parse(fs.readFileSync(pkg, 'utf8')).version}`;
}

function backendName(runtime: Runtime): string {
  if (runtime === 'deno') return 'wgpu (Deno)';
  if (runtime === 'browser') return 'browser WebGPU';
  const native: Record<string, string> = { linux: 'Vulkan', darwin: 'Metal', win32: 'D3D12' };
  return `Dawn on ${native[process.platform] ?? process.platform}`;
}
