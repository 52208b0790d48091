// Kernel sources for devices without the `subgroups` feature (Deno's wgpu,
// whose WGSL front end rejects `enable subgroups;` outright, and browsers or
// GPUs that lack it). Subgroup code in kernels/ only runs in variants that the
// ops select when the device has subgroups of a fixed size (matmul's
// `subgroup` entry, attention's SHUFFLE override), and they refuse those
// variants otherwise. So on such a device the same file is compiled with the
// directive dropped, each subgroup shuffle/broadcast replaced by its value
// argument, and the subgroup lane parameter made a constant 0: code that the
// device can never select, made valid so that the rest of the file compiles.
// Any other subgroup construct is an error naming the file, so a new one gets
// a decision rather than a silent stand-in.
import { ShaderCompileError } from '../errors.ts';

// Replaced in place, line for line, so compile errors keep their line numbers.
const ENABLE = /^[^\S\n]*enable\s+subgroups\s*;/m;
const VALUE_OPS = ['subgroupShuffle', 'subgroupBroadcast'];
// The lane builtin as the last parameter of an entry point; `let` keeps its name.
const LANE_PARAM = /,\s*@builtin\(subgroup_invocation_id\)\s*(\w+)\s*:\s*u32\s*\)\s*\{/g;

export function usesSubgroups(source: string): boolean {
  return ENABLE.test(source);
}

/** The index of the ')' that closes the '(' at `open`. */
function closingParen(source: string, open: number): number {
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    if (source[i] === '(') depth++;
    else if (source[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

/** The first top-level argument of the call whose '(' is at `open`. */
function firstArgument(source: string, open: number, close: number): string {
  let depth = 0;
  for (let i = open + 1; i < close; i++) {
    const c = source[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) return source.slice(open + 1, i);
  }
  return source.slice(open + 1, close);
}

function replaceValueOps(file: string, source: string): string {
  const call = new RegExp(`\\b(${VALUE_OPS.join('|')})\\(`, 'g');
  let out = '';
  let at = 0;
  for (let m = call.exec(source); m; m = call.exec(source)) {
    const open = m.index + m[0].length - 1;
    const close = closingParen(source, open);
    if (close < 0) throw new ShaderCompileError(file, [`${m[1]}( at offset ${m.index} is not closed`]);
    out += `${source.slice(at, m.index)}(${firstArgument(source, open, close)})`;
    at = close + 1;
    call.lastIndex = at;
  }
  return out + source.slice(at);
}

/** `source` compiled for a device without subgroups (see above). */
export function withoutSubgroups(file: string, source: string): string {
  let out = source.replace(ENABLE, '');
  out = replaceValueOps(file, out);
  out = out.replace(LANE_PARAM, (all: string, name: string) => `) { let ${name} = 0u;${'\n'.repeat(all.split('\n').length - 1)}`);
  const left = /\bsubgroup[A-Z]\w*\(|subgroup_invocation_id|subgroup_size/.exec(out);
  if (left) {
    const line = out.slice(0, left.index).split('\n').length;
    throw new ShaderCompileError(file, [`${file}:${line}: '${left[0]}' has no stand-in for devices without subgroups (see src/gpu/subgroupFree.ts)`]);
  }
  return out;
}
