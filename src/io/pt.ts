// PyTorch checkpoints as torch.save writes them since 1.6: a zip archive with
//   <archive>/data.pkl    the object tree, a protocol-2 pickle
//   <archive>/data/<key>  one stored entry per storage (raw little-endian bytes)
//   <archive>/byteorder   'little' or 'big' (torch >= 2.1; absent means little)
// The pickle is read with the restricted unpickler (nothing in it runs);
// tensors are views (offset, shape, strides) into storages and are read on
// demand, straight from the storage's zip entry, gathered into contiguous
// row-major bytes when strided. Opening reads only the central directory and
// data.pkl, so multi-gigabyte checkpoints open instantly.
//
// The tree is flattened like safetensors conversions of nested checkpoints:
// dict keys join with '.' ({'unet': {'a.weight': t}} → 'unet.a.weight'), and
// lists/tuples that hold tensors contribute their indices ('blocks.0').
// Non-tensor leaves go to `metadata` under their flattened key as JSON text:
// ints, floats ("nan"/"inf"/"-inf" as strings), strings, bools, None → null,
// lists/tuples without tensors as JSON arrays, dtype globals as "torch.float16",
// bytes as null. A bare storage in the tree reads as a 1-d tensor of its
// elements. The attribute state of an OrderedDict (a state_dict's `_metadata`
// version table) is dropped.
import { FormatError } from '../errors.ts';
import { type ByteSource, fileSource } from './byteSource.ts';
import { type Checkpoint, STORED_DTYPE_BYTES, type StoredDType, type TensorEntry } from './checkpoint.ts';
import { type GlobalDef, PyDict, PyGlobal, PyObject, PyTuple, type PyKey, type PyValue, describe, unpickle } from './pickle.ts';
import { type ZipEntry, ZipArchive } from './zip.ts';

/** data.pkl larger than this is refused (a 10k-tensor state dict pickles to ~2 MB). */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;
const MAX_RANK = 64;
/** Nesting of dicts/lists in the object tree. */
const MAX_DEPTH = 64;
/** Nodes visited while flattening: shared sub-trees can otherwise expand exponentially. */
const MAX_NODES = 250_000;
/** Characters of JSON metadata (leaves counted as they are written, shared ones each time). */
const MAX_METADATA_CHARS = 64 * 1024 * 1024;

/** A storage: one zip entry of `numel` elements of one dtype. */
export class StorageRef extends PyObject {
  constructor(
    readonly key: string,
    readonly dtype: StoredDType,
    readonly numel: number,
    readonly entry: ZipEntry,
  ) {
    super('torch.storage');
  }
}

/** A tensor: a strided view into a storage (offsets and strides in elements). */
export class TensorRef extends PyObject {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {
    super('torch.Tensor');
  }
}

const STORAGE_DTYPES: Readonly<Record<string, StoredDType>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  // torch 2 names raw (untyped) storages this way; their elements are bytes.
  UntypedStorage: 'U8',
};

/** dtype objects pickle as globals when a checkpoint stores them as values. */
const DTYPE_NAMES = ['float32', 'float', 'float16', 'half', 'bfloat16', 'float64', 'double', 'int64', 'long', 'int32', 'int', 'int16', 'short', 'int8', 'uint8', 'bool'];

function intArg(v: PyValue, what: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error(`${what} is ${typeof v === 'number' || typeof v === 'bigint' ? v : describe(v)}, expected an integer >= ${min}`);
  return v;
}

function intTuple(v: PyValue, what: string): number[] {
  if (!(v instanceof PyTuple)) throw new Error(`${what} is a ${describe(v)}, expected a tuple`);
  if (v.items.length > MAX_RANK) throw new Error(`${what} has ${v.items.length} dims, more than ${MAX_RANK}`);
  return v.items.map((x, i) => intArg(x, `${what}[${i}]`));
}

function rebuildTensor(args: readonly PyValue[]): TensorRef {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.length < 6 || args.length > 7) throw new Error(`expected 6 or 7 arguments, got ${args.length}`);
  const [storage, off, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new Error(`storage is a ${describe(storage)}`);
  const offset = intArg(off, 'storage_offset');
  const shape = intTuple(size, 'size');
  const strides = intTuple(stride, 'stride');
  if (shape.length !== strides.length) throw new Error(`size has ${shape.length} dims but stride has ${strides.length}`);
  let count = 1;
  let last = offset;
  for (let i = 0; i < shape.length; i++) {
    count *= shape[i];
    last += Math.max(shape[i] - 1, 0) * strides[i];
  }
  if (!Number.isSafeInteger(count * STORED_DTYPE_BYTES[storage.dtype])) throw new Error(`size [${shape.join(', ')}] is too large`);
  if (count > 0 && !(last < storage.numel)) {
    throw new Error(`tensor (offset ${offset}, size [${shape.join(', ')}], stride [${strides.join(', ')}]) reaches element ${last} of storage '${storage.key}' with ${storage.numel} elements`);
  }
  return new TensorRef(storage, offset, shape, strides);
}

function asTensor(v: PyValue): TensorRef {
  if (!(v instanceof TensorRef)) throw new Error(`expected a tensor, got a ${describe(v)}`);
  return v;
}

function isEmptyState(v: PyValue): boolean {
  return v === null || (v instanceof PyDict && v.items.size === 0) || (v instanceof PyTuple && v.items.every(isEmptyState));
}

/**
 * The allow-list: the only names a checkpoint's pickle may mention. Callables
 * are re-implemented here; the rest are inert values.
 */
export const TORCH_GLOBALS: ReadonlyMap<string, GlobalDef> = new Map<string, GlobalDef>([
  [
    'collections.OrderedDict',
    {
      call: (args) => {
        if (args.length !== 0) throw new Error('OrderedDict with constructor arguments is not supported');
        return new PyDict();
      },
    },
  ],
  ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
  [
    'torch._utils._rebuild_parameter',
    {
      // (data, requires_grad, backward_hooks): a Parameter is its tensor
      call: (args) => {
        if (args.length !== 3) throw new Error(`expected 3 arguments, got ${args.length}`);
        return asTensor(args[0]);
      },
    },
  ],
  [
    'torch._utils._rebuild_parameter_with_state',
    {
      // (data, requires_grad, backward_hooks, state): only when the Python state is empty
      call: (args) => {
        if (args.length !== 4) throw new Error(`expected 4 arguments, got ${args.length}`);
        if (!isEmptyState(args[3])) throw new Error('parameters with Python attributes are not supported');
        return asTensor(args[0]);
      },
    },
  ],
  [
    'torch.Size',
    {
      call: (args) => {
        if (args.length !== 1 || !(args[0] instanceof PyTuple)) throw new Error('expected one tuple');
        intTuple(args[0], 'torch.Size');
        return args[0];
      },
    },
  ],
  ...Object.keys(STORAGE_DTYPES).map((n): [string, GlobalDef] => [`torch.${n}`, {}]),
  ...DTYPE_NAMES.map((n): [string, GlobalDef] => [`torch.${n}`, {}]),
]);

const LEGACY_HINT = 're-save it with torch>=1.6: torch.save(torch.load(path), path)';

/** Whether a file's first bytes (≥ 262 of them, or the whole file) are a pre-1.6 torch file. */
export function isLegacyTorch(head: Uint8Array): boolean {
  // Pre-1.6 files are a bare pickle stream (magic number first) or, before
  // 0.4, a tar archive.
  if (head.length >= 2 && head[0] === 0x80 && head[1] <= 5) return true;
  return head.length >= 262 && new TextDecoder('latin1').decode(head.subarray(257, 262)) === 'ustar';
}

export interface PtOptions {
  /** data.pkl size limit in bytes. */
  maxPickleBytes?: number;
}

export async function openPt(source: ByteSource, options: PtOptions = {}): Promise<Checkpoint> {
  const file = source.name;
  const head = await source.read(0, Math.min(source.size, 512));
  if (isLegacyTorch(head)) throw new FormatError(file, `legacy (pre-1.6, non-zip) torch serialization format is not supported; ${LEGACY_HINT}`);
  if (!(head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b)) throw new FormatError(file, 'not a PyTorch checkpoint: no zip signature (PK) at the start');
  const zip = await ZipArchive.open(source);

  const pkls = zip.entries().filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkls.length === 0) throw new FormatError(file, 'no <archive>/data.pkl entry: this zip was not written by torch.save');
  if (pkls.length > 1) throw new FormatError(file, `several data.pkl entries (${pkls.map((e) => e.name).join(', ')})`);
  const prefix = pkls[0].name.slice(0, -'/data.pkl'.length);
  if (zip.get(`${prefix}/constants.pkl`) || zip.entries().some((e) => e.name.startsWith(`${prefix}/code/`))) {
    throw new FormatError(file, 'this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save model.state_dict() with torch.save instead');
  }
  const order = zip.get(`${prefix}/byteorder`);
  if (order) {
    if (order.size > 16) throw new FormatError(file, `${order.name} is ${order.size} bytes, expected 'little' or 'big'`);
    const text = new TextDecoder().decode(await zip.read(order)).trim();
    if (text === 'big') throw new FormatError(file, 'big-endian checkpoint: re-save it on a little-endian machine (x86, ARM)');
    if (text !== 'little') throw new FormatError(file, `${order.name} says ${JSON.stringify(text)}, expected 'little' or 'big'`);
  }
  const maxPkl = options.maxPickleBytes ?? MAX_PICKLE_BYTES;
  if (pkls[0].size > maxPkl) throw new FormatError(file, `${pkls[0].name} is ${pkls[0].size} bytes, over the limit of ${maxPkl}`);
  const pkl = await zip.read(pkls[0]);

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    // ('storage', storage_type, key, location, numel)
    if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
      throw new Error(`persistent id is a ${describe(pid)}, expected ('storage', type, key, location, numel)`);
    }
    const [, type, key, location, n] = pid.items;
    if (!(type instanceof PyGlobal) || type.module !== 'torch' || !Object.hasOwn(STORAGE_DTYPES, type.name)) {
      throw new Error(`storage type is ${describe(type)}, expected a torch storage class`);
    }
    if (typeof key !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(key)) throw new Error(`storage key ${JSON.stringify(key)} is not a plain name`);
    if (typeof location !== 'string') throw new Error(`storage location is a ${describe(location)}`);
    const numel = intArg(n, `numel of storage '${key}'`);
    const dtype = STORAGE_DTYPES[type.name];
    const prev = storages.get(key);
    if (prev) {
      if (prev.dtype !== dtype || prev.numel !== numel) throw new Error(`storage '${key}' is used as ${prev.dtype}[${prev.numel}] and as ${dtype}[${numel}]`);
      return prev;
    }
    const entry = zip.get(`${prefix}/data/${key}`);
    if (!entry) throw new FormatError(file, `storage '${key}' has no entry ${prefix}/data/${key}`);
    if (entry.size !== numel * STORED_DTYPE_BYTES[dtype]) {
      throw new FormatError(file, `storage '${key}' holds ${numel} × ${dtype} = ${numel * STORED_DTYPE_BYTES[dtype]} bytes but its entry has ${entry.size}`);
    }
    const s = new StorageRef(key, dtype, numel, entry);
    storages.set(key, s);
    return s;
  };
  const root = unpickle(pkl, { file, entry: pkls[0].name, globals: TORCH_GLOBALS, persistentLoad });
  const { tensors, metadata } = flatten(root, file);

  const entries = new Map<string, TensorEntry>();
  for (const [name, t] of tensors) entries.set(name, tensorEntry(zip, name, t instanceof StorageRef ? new TensorRef(t, 0, [t.numel], [1]) : t));
  const keys = [...entries.keys()];
  return {
    source: file,
    metadata,
    keys: () => keys,
    get: (k) => entries.get(k),
    close: () => zip.close(),
  };
}

export async function openPtFile(path: string): Promise<Checkpoint> {
  const source = await fileSource(path);
  try {
    return await openPt(source);
  } catch (e) {
    await source.close();
    throw e;
  }
}

function tensorEntry(zip: ZipArchive, name: string, t: TensorRef): TensorEntry {
  const { dtype } = t.storage;
  const item = STORED_DTYPE_BYTES[dtype];
  const count = t.shape.reduce((a, b) => a * b, 1);
  // Row-major strides, ignoring dims of size 1 (their stride is arbitrary).
  let contiguous = true;
  for (let i = t.shape.length - 1, want = 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== want) contiguous = false;
    want *= t.shape[i];
  }
  return {
    name,
    dtype,
    shape: t.shape,
    byteLength: count * item,
    async read() {
      if (count === 0) return new Uint8Array(0);
      let span = 1;
      for (let i = 0; i < t.shape.length; i++) span += (t.shape[i] - 1) * t.stride[i];
      const raw = await zip.readRange(t.storage.entry, t.offset * item, span * item);
      return contiguous ? raw : gather(raw, t.shape, t.stride, item);
    },
  };
}

/** Copies a strided view (strides in elements, relative to `src`) into contiguous row-major bytes. */
function gather(src: Uint8Array, shape: readonly number[], stride: readonly number[], item: number): Uint8Array {
  const r = shape.length;
  const count = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(count * item);
  const n = shape[r - 1];
  const s = stride[r - 1];
  const idx = new Array<number>(r - 1).fill(0);
  let base = 0;
  let at = 0;
  for (let o = 0; o < count / n; o++) {
    if (s === 1) {
      out.set(src.subarray(base * item, (base + n) * item), at);
      at += n * item;
    } else {
      for (let j = 0; j < n; j++) {
        const from = (base + j * s) * item;
        for (let b = 0; b < item; b++) out[at++] = src[from + b];
      }
    }
    for (let d = r - 2; d >= 0; d--) {
      base += stride[d];
      if (++idx[d] < shape[d]) break;
      base -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

function keyString(k: PyKey): string {
  if (k === null) return 'None';
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  return String(k);
}

/** The checkpoint tree → flat tensor names and JSON metadata (see the file comment). */
function flatten(root: PyValue, file: string): { tensors: Map<string, TensorRef | StorageRef>; metadata: Record<string, string> } {
  if (!(root instanceof PyDict || root instanceof PyTuple || Array.isArray(root))) {
    throw new FormatError(file, `the checkpoint holds a ${describe(root)}, not a dict of tensors`);
  }
  const tensors = new Map<string, TensorRef | StorageRef>();
  // A Map, turned into an object at the end: a key such as '__proto__' must stay a plain entry.
  const metadata = new Map<string, string>();
  const onPath = new Set<object>();
  let nodes = 0;
  const fail = (key: string, d: string): never => {
    const shown = key.length > 100 ? `${key.slice(0, 100)}…` : key;
    throw new FormatError(file, `at '${shown}': ${d}`);
  };
  const enter = (v: object, key: string, depth: number) => {
    if (++nodes > MAX_NODES) fail(key, `the object tree has more than ${MAX_NODES} nodes (shared sub-trees?)`);
    if (depth > MAX_DEPTH) fail(key, `nested deeper than ${MAX_DEPTH} levels`);
    if (onPath.has(v)) fail(key, 'the object tree is cyclic');
    onPath.add(v);
  };
  const children = (v: PyDict | PyTuple | PyValue[]): [string, PyValue][] =>
    v instanceof PyDict ? [...v.items].map(([k, x]) => [keyString(k), x]) : (v instanceof PyTuple ? v.items : v).map((x, i) => [String(i), x]);
  const values = (v: PyDict | PyTuple | PyValue[]): Iterable<PyValue> => (v instanceof PyDict ? v.items.values() : v instanceof PyTuple ? v.items : v);

  // Memoised per container, so shared sub-trees are searched once. Errors
  // name the key where the search started.
  const tensorInside = new Map<object, boolean>();
  const hasTensor = (v: PyValue, key: string, depth: number): boolean => {
    if (v instanceof TensorRef || v instanceof StorageRef) return true;
    if (!(v instanceof PyDict || v instanceof PyTuple || Array.isArray(v))) return false;
    const known = tensorInside.get(v);
    if (known !== undefined) return known;
    enter(v, key, depth);
    let found = false;
    for (const x of values(v)) if ((found = hasTensor(x, key, depth + 1))) break;
    onPath.delete(v);
    tensorInside.set(v, found);
    return found;
  };
  let jsonChars = 0;
  const json = (v: PyValue, key: string, depth: number): string => {
    let out: string;
    if (v === null || v instanceof Uint8Array) out = 'null';
    else if (typeof v === 'number') out = Number.isFinite(v) ? JSON.stringify(v) : Number.isNaN(v) ? '"nan"' : v > 0 ? '"inf"' : '"-inf"';
    else if (typeof v === 'bigint') out = v.toString();
    else if (typeof v === 'boolean' || typeof v === 'string') out = JSON.stringify(v);
    else if (v instanceof PyGlobal) out = JSON.stringify(v.qualified);
    else if (v instanceof PyDict || v instanceof PyTuple || Array.isArray(v)) {
      enter(v, key, depth);
      if (v instanceof PyDict) out = `{${[...v.items].map(([k, x]) => `${JSON.stringify(keyString(k))}:${json(x, key, depth + 1)}`).join(',')}}`;
      else out = `[${[...values(v)].map((x) => json(x, key, depth + 1)).join(',')}]`;
      onPath.delete(v);
      return out;
    } else out = JSON.stringify(v.pyType);
    if ((jsonChars += out.length) > MAX_METADATA_CHARS) fail(key, `metadata exceeds ${MAX_METADATA_CHARS} characters`);
    return out;
  };
  const walk = (v: PyValue, key: string, depth: number) => {
    if (v instanceof TensorRef || v instanceof StorageRef) {
      if (tensors.has(key) || metadata.has(key)) fail(key, 'two entries flatten to this name');
      tensors.set(key, v);
    } else if (v instanceof PyDict || ((v instanceof PyTuple || Array.isArray(v)) && (depth === 0 || hasTensor(v, key, depth)))) {
      enter(v, key, depth);
      for (const [k, x] of children(v)) walk(x, key ? `${key}.${k}` : k, depth + 1);
      onPath.delete(v);
    } else {
      if (tensors.has(key) || metadata.has(key)) fail(key, 'two entries flatten to this name');
      metadata.set(key, json(v, key, depth));
    }
  };
  walk(root, '', 0);
  return { tensors, metadata: Object.fromEntries(metadata) };
}
