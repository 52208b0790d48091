// A restricted unpickler: it understands the opcodes that torch.save emits for
// state dicts (protocol 2, and 3-5 for files saved with a higher
// pickle_protocol) and builds plain data from them. Nothing named in a pickle
// is ever executed: GLOBAL resolves only names on a caller-supplied
// allow-list, and REDUCE calls only the TypeScript implementations attached to
// those names. Everything else that would run code in Python (other globals,
// INST/OBJ/NEWOBJ, BUILD on anything but a dict, APPEND/SETITEM on a
// non-container) is an UnsafePickleError; malformed data is a FormatError.
//
// The pickle is read in two passes. The first decodes every opcode and checks
// every GLOBAL name (and every STACK_GLOBAL whose names are literals), so a
// forbidden global anywhere in the file is reported before any object is
// built. The second runs the opcodes.
import { FormatError, KandinskyError, UnsafePickleError } from '../errors.ts';

/** Values a restricted pickle can produce. Lists are JS arrays; tuples, dicts and globals are classes. */
export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | PyDict | PyGlobal | PyObject;
/** Dict keys: the hashable scalars (state dict keys are strings; optimizer states use ints). */
export type PyKey = string | number | bigint | boolean | null;

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

/** dict and collections.OrderedDict (both keep insertion order). */
export class PyDict {
  readonly items = new Map<PyKey, PyValue>();
}

/** Base class of objects that allow-listed callables return (e.g. torch tensors). */
export class PyObject {
  constructor(readonly pyType: string) {}
}

export interface GlobalDef {
  /**
   * What REDUCE does with this callable; a global without `call` is a plain
   * value (e.g. a dtype). A plain Error thrown here becomes a FormatError that
   * names the opcode's position; typed errors pass through.
   */
  call?: (args: readonly PyValue[]) => PyValue;
}

export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly def: GlobalDef,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

export interface PickleLimits {
  /** Opcodes in the whole pickle (a large state dict needs ~30 per tensor). */
  maxOps: number;
  maxMemo: number;
  /** Open MARKs at once. */
  maxMarkDepth: number;
  maxStringBytes: number;
  /** Bytes of a LONG4 integer (converting huge ones is quadratic). */
  maxLongBytes: number;
}

export const DEFAULT_PICKLE_LIMITS: Readonly<PickleLimits> = {
  maxOps: 50_000_000,
  maxMemo: 10_000_000,
  maxMarkDepth: 1000,
  maxStringBytes: 16 * 1024 * 1024,
  maxLongBytes: 1024,
};

export interface UnpickleOptions {
  /** The file, for error messages. */
  file: string;
  /** The pickle's name inside the file (e.g. 'archive/data.pkl'). */
  entry?: string;
  /** The allow-list: 'module.name' → what the global means. */
  globals: ReadonlyMap<string, GlobalDef>;
  /** BINPERSID handler (torch storages); without it BINPERSID is refused. Errors as for GlobalDef.call. */
  persistentLoad?: (pid: PyValue) => PyValue;
  limits?: Partial<PickleLimits>;
}

const OP_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3',
  0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Opcodes whose Python meaning is "construct or call something named in the data". */
const CONSTRUCTING = new Set([0x69, 0x6f, 0x81, 0x92, 0x82, 0x83, 0x84]);
/** Protocol-0 text opcodes and set/buffer opcodes: valid pickle, never in a torch state dict. */
const UNSUPPORTED = new Set([0x46, 0x49, 0x4c, 0x50, 0x53, 0x54, 0x55, 0x56, 0x67, 0x70, 0x8f, 0x90, 0x91, 0x96, 0x97, 0x98]);

type Arg = number | bigint | string | Uint8Array | undefined | { module: string; name: string };

interface Op {
  code: number;
  pos: number;
  arg: Arg;
}

/** A Python-ish description of a value, for error messages. */
export function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (v instanceof PyGlobal) return v.qualified;
  return v.pyType;
}

function unsafeGlobalMessage(qualified: string): string {
  return `global '${qualified}' is not on the allow-list; nothing was executed. Only state dicts of tensors can be read (re-save with torch.save(model.state_dict(), path))`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Pass 1: every opcode decoded and bounds-checked, globals checked against the allow-list. */
function decode(data: Uint8Array, opts: UnpickleOptions, lim: PickleLimits): Op[] {
  const where = opts.entry ?? 'pickle';
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const ops: Op[] = [];
  let pos = 0;
  let opPos = 0;
  let code = 0;
  const fail = (d: string): never => {
    throw new FormatError(opts.file, `${where} at byte ${opPos} (${OP_NAMES[code] ?? 'opcode'}): ${d}`);
  };
  const need = (n: number) => {
    if (n > data.length - pos) fail(`needs ${n} bytes, only ${data.length - pos} remain (truncated pickle)`);
  };
  const bytes = (n: number) => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const str = (n: number) => {
    if (n > lim.maxStringBytes) fail(`string of ${n} bytes exceeds the limit of ${lim.maxStringBytes}`);
    try {
      return utf8.decode(bytes(n));
    } catch (e) {
      if (e instanceof FormatError) throw e;
      return fail('string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 1024) fail('GLOBAL name is not a newline-terminated line of at most 1024 bytes');
    const s = new TextDecoder('latin1').decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const u32 = () => {
    need(4);
    pos += 4;
    return view.getUint32(pos - 4, true);
  };
  const u64 = () => {
    need(8);
    pos += 8;
    const v = view.getBigUint64(pos - 8, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(v);
  };
  const long = (n: number): number | bigint => {
    if (n > lim.maxLongBytes) fail(`integer of ${n} bytes exceeds the limit of ${lim.maxLongBytes}`);
    const b = bytes(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const checkGlobal = (module: string, name: string) => {
    const q = `${module}.${name}`;
    if (!opts.globals.has(q)) throw new UnsafePickleError(opts.file, `${where} at byte ${opPos}: ${unsafeGlobalMessage(q)}`);
  };

  // Enough of a simulation to see the literal names STACK_GLOBAL will pop
  // (protocol 4 pushes module and name as strings, often via the memo).
  const recent: (string | undefined)[] = [];
  const strMemo = new Map<number, string | undefined>();
  const memoIdx = new Set<number>();

  for (;;) {
    opPos = pos;
    code = 0;
    if (ops.length >= lim.maxOps) fail(`more than ${lim.maxOps} opcodes`);
    need(1);
    code = data[pos++];
    const name = OP_NAMES[code];
    if (name === undefined) fail(`unknown opcode 0x${code.toString(16).padStart(2, '0')}`);
    if (CONSTRUCTING.has(code)) {
      throw new UnsafePickleError(opts.file, `${where} at byte ${opPos}: opcode ${name} constructs arbitrary objects and is not allowed; nothing was executed`);
    }
    if (UNSUPPORTED.has(code)) fail(`opcode ${name} is not supported (a torch state dict never needs it)`);
    let arg: Arg;
    let pushed: string | undefined;
    switch (code) {
      case 0x80: // PROTO
        need(1);
        arg = data[pos++];
        if ((arg as number) > 5) fail(`pickle protocol ${arg} is newer than 5`);
        break;
      case 0x95: // FRAME: framing is a reading hint; check the length and ignore it
        arg = u64();
        if ((arg as number) > data.length - pos) fail(`frame of ${arg} bytes runs past the end`);
        break;
      case 0x4a: // BININT
        need(4);
        arg = view.getInt32(pos, true);
        pos += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        arg = data[pos++];
        break;
      case 0x4d: // BININT2
        need(2);
        arg = view.getUint16(pos, true);
        pos += 2;
        break;
      case 0x8a: // LONG1
        need(1);
        arg = long(data[pos++]);
        break;
      case 0x8b: {
        // LONG4
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        if (n < 0) fail('negative LONG4 length');
        arg = long(n);
        break;
      }
      case 0x47: // BINFLOAT is big-endian
        need(8);
        arg = view.getFloat64(pos, false);
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        arg = pushed = str(u32());
        break;
      case 0x8d: // BINUNICODE8
        arg = pushed = str(u64());
        break;
      case 0x8c: // SHORT_BINUNICODE
        need(1);
        arg = pushed = str(data[pos++]);
        break;
      case 0x42: // BINBYTES
      case 0x8e: // BINBYTES8
      case 0x43: {
        // SHORT_BINBYTES
        let n: number;
        if (code === 0x43) {
          need(1);
          n = data[pos++];
        } else n = code === 0x42 ? u32() : u64();
        if (n > lim.maxStringBytes) fail(`bytes of length ${n} exceed the limit of ${lim.maxStringBytes}`);
        arg = bytes(n).slice();
        break;
      }
      case 0x71: // BINPUT
        need(1);
        arg = data[pos++];
        break;
      case 0x72: // LONG_BINPUT
        arg = u32();
        break;
      case 0x68: // BINGET
        need(1);
        arg = data[pos++];
        pushed = strMemo.get(arg);
        break;
      case 0x6a: // LONG_BINGET
        arg = u32();
        pushed = strMemo.get(arg);
        break;
      case 0x63: {
        // GLOBAL 'module\nname\n'
        const module = line();
        const gname = line();
        checkGlobal(module, gname);
        arg = { module, name: gname };
        break;
      }
      case 0x93: {
        // STACK_GLOBAL: names come from the stack; check them now when they are literals
        const [m, n] = recent.slice(-2);
        if (m !== undefined && n !== undefined) checkGlobal(m, n);
        break;
      }
      default:
        break;
    }
    // Memo puts do not change the stack; everything else pushes one (possibly non-string) value or pops.
    if (code === 0x80 || code === 0x95) {
      // PROTO and FRAME do not touch the stack (a frame boundary may fall between the two names).
    } else if (code === 0x71 || code === 0x72 || code === 0x94) {
      const idx = code === 0x94 ? memoIdx.size : (arg as number);
      memoIdx.add(idx);
      strMemo.set(idx, recent[recent.length - 1]);
    } else {
      recent.push(pushed);
      if (recent.length > 2) recent.shift();
    }
    ops.push({ code, pos: opPos, arg });
    if (code === 0x2e) break;
  }
  if (pos !== data.length) {
    opPos = pos;
    fail(`${data.length - pos} bytes after STOP`);
  }
  return ops;
}

function isKey(v: PyValue): v is PyKey {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean';
}

/** Unpickles `data` with only the allow-listed globals; see the file comment for what is refused. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): PyValue {
  const lim: PickleLimits = { ...DEFAULT_PICKLE_LIMITS, ...opts.limits };
  const ops = decode(data, opts, lim);
  const where = opts.entry ?? 'pickle';

  let stack: PyValue[] = [];
  const metastack: PyValue[][] = [];
  const memo = new Map<number, PyValue>();
  let op: Op = ops[0];
  const fail = (d: string): never => {
    throw new FormatError(opts.file, `${where} at byte ${op.pos} (${OP_NAMES[op.code]}): ${d}`);
  };
  const unsafe = (d: string): never => {
    throw new UnsafePickleError(opts.file, `${where} at byte ${op.pos} (${OP_NAMES[op.code]}): ${d}; nothing was executed`);
  };
  const pop = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    if (metastack.length === 0) fail('no MARK to pop to');
    const items = stack;
    stack = metastack.pop()!;
    return items;
  };
  const put = (idx: number) => {
    if (!memo.has(idx) && memo.size >= lim.maxMemo) fail(`memo exceeds ${lim.maxMemo} entries`);
    memo.set(idx, top());
  };
  const get = (idx: number) => {
    if (!memo.has(idx)) fail(`memo index ${idx} was never stored`);
    stack.push(memo.get(idx)!);
  };
  const guarded = (what: string, f: () => PyValue): PyValue => {
    try {
      return f();
    } catch (e) {
      if (e instanceof KandinskyError) throw e;
      return fail(`${what}: ${(e as Error).message}`);
    }
  };
  const setItems = (dict: PyValue, kv: readonly PyValue[]) => {
    if (!(dict instanceof PyDict)) return unsafe(`SETITEM on a ${describe(dict)} (would call its __setitem__)`);
    if (kv.length % 2) fail('odd number of items for a dict');
    for (let i = 0; i < kv.length; i += 2) {
      const k = kv[i];
      if (!isKey(k)) fail(`dict key of type ${describe(k)} is not supported`);
      dict.items.set(k as PyKey, kv[i + 1]);
    }
  };
  const append = (list: PyValue, items: readonly PyValue[]) => {
    if (!Array.isArray(list)) return unsafe(`APPEND on a ${describe(list)} (would call its append/extend)`);
    for (const x of items) list.push(x);
  };

  for (op of ops) {
    const a = op.arg;
    switch (op.code) {
      case 0x80: // PROTO
      case 0x95: // FRAME
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        if (metastack.length >= lim.maxMarkDepth) fail(`MARKs nested deeper than ${lim.maxMarkDepth}`);
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP (pops a MARK when the current frame is empty, as CPython does)
        if (stack.length) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4a:
      case 0x4b:
      case 0x4d:
      case 0x8a:
      case 0x8b:
      case 0x47:
      case 0x58:
      case 0x8d:
      case 0x8c:
      case 0x42:
      case 0x8e:
      case 0x43:
        stack.push(a as PyValue);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: {
        // TUPLE (popMark replaces `stack`, so pop before naming it)
        const items = popMark();
        stack.push(new PyTuple(items));
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        const n = op.code - 0x84;
        if (stack.length < n) fail('stack underflow');
        stack.push(new PyTuple(stack.splice(stack.length - n, n)));
        break;
      }
      case 0x6c: {
        // LIST
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x71:
      case 0x72:
        put(a as number);
        break;
      case 0x94: // MEMOIZE
        put(memo.size);
        break;
      case 0x68:
      case 0x6a:
        get(a as number);
        break;
      case 0x63: {
        const g = a as { module: string; name: string };
        stack.push(new PyGlobal(g.module, g.name, opts.globals.get(`${g.module}.${g.name}`)!));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        const q = `${module as string}.${name as string}`;
        const def = opts.globals.get(q);
        if (!def) throw new UnsafePickleError(opts.file, `${where} at byte ${op.pos}: ${unsafeGlobalMessage(q)}`);
        stack.push(new PyGlobal(module as string, name as string, def));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!(fn instanceof PyGlobal) || !fn.def.call) return unsafe(`REDUCE calls a ${describe(fn)}, which is not an allowed callable`);
        if (!(args instanceof PyTuple)) fail(`REDUCE arguments are a ${describe(args)}, not a tuple`);
        const call = fn.def.call;
        stack.push(guarded(fn.qualified, () => call((args as PyTuple).items)));
        break;
      }
      case 0x62: {
        // BUILD: only the attribute state of a dict (a state_dict's `_metadata`), which is dropped
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict)) return unsafe(`BUILD (__setstate__) on a ${describe(obj)}`);
        const ok = (s: PyValue) => s === null || s instanceof PyDict;
        if (!(ok(state) || (state instanceof PyTuple && state.items.length === 2 && state.items.every(ok)))) {
          fail(`BUILD state for a dict is a ${describe(state)}, expected a dict of attributes`);
        }
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) return unsafe('persistent ids are not allowed here');
        const load = opts.persistentLoad;
        stack.push(guarded('persistent id', () => load(pid)));
        break;
      }
      default:
        fail('opcode not handled');
    }
  }
  return fail('no STOP opcode');
}
