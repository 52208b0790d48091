// Kernel sources and their reflected interfaces. Every kernel family is one
// WGSL file in kernels/; bind-group layouts and uniform layouts come from
// reflection (wgsl_reflect), never from hand-written tables.
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { ShaderCompileError } from '../errors.ts';
import { listPackageDir, packageUrl, readPackageText } from '../platform.ts';

/** Kernel families: the .wgsl files in kernels/, without the suffix. */
export async function kernelFiles(): Promise<string[]> {
  const names = await listPackageDir(packageUrl('kernels/'));
  return names.filter((n) => n.endsWith('.wgsl')).map((n) => n.slice(0, -5));
}

export type ScalarKind = 'f32' | 'u32' | 'i32';

export interface UniformMember {
  name: string;
  offset: number;
  kind: ScalarKind;
  /** Components: 1 for scalars, 2-4 for vectors. */
  count: number;
}

export interface BindingInfo {
  name: string;
  binding: number;
  kind: 'uniform' | 'storage' | 'read-only-storage';
  /** Uniform structs only. */
  members?: UniformMember[];
  /** Uniform structs only: byte size. */
  size?: number;
}

export interface EntryInfo {
  name: string;
  bindings: BindingInfo[];
}

export interface KernelModule {
  file: string;
  source: string;
  module: GPUShaderModule;
  entries: Map<string, EntryInfo>;
  overrides: Set<string>;
}

function scalarKind(name: string, where: string): ScalarKind {
  if (name === 'f32' || name === 'u32' || name === 'i32') return name;
  throw new Error(`${where}: uniform member type ${name} is not supported (use f32, u32, i32 or their vectors)`);
}

type ReflectType = { name: string; format?: { name: string } | null; members?: ReflectMember[]; size?: number };
type ReflectMember = { name: string; offset: number; type: ReflectType };

function reflectMembers(file: string, type: ReflectType): UniformMember[] {
  return (type.members ?? []).map((m) => {
    const where = `kernels/${file}.wgsl ${type.name}.${m.name}`;
    const vec = /^vec([234])/.exec(m.type.name);
    if (vec) return { name: m.name, offset: m.offset, kind: scalarKind(m.type.format?.name ?? '', where), count: Number(vec[1]) };
    return { name: m.name, offset: m.offset, kind: scalarKind(m.type.name, where), count: 1 };
  });
}

export function reflectKernel(file: string, source: string): { entries: Map<string, EntryInfo>; overrides: Set<string> } {
  const reflect = new WgslReflect(source);
  const entries = new Map<string, EntryInfo>();
  for (const fn of reflect.entry.compute) {
    const bindings: BindingInfo[] = [];
    for (const r of fn.resources) {
      if (r.group !== 0) throw new Error(`kernels/${file}.wgsl: binding ${r.name} must be in @group(0)`);
      if (r.resourceType === 0) {
        const type = r.type as unknown as ReflectType;
        bindings.push({ name: r.name, binding: r.binding, kind: 'uniform', members: reflectMembers(file, type), size: r.size });
      } else if (r.resourceType === 1) {
        bindings.push({ name: r.name, binding: r.binding, kind: r.access === 'read' ? 'read-only-storage' : 'storage' });
      } else {
        throw new Error(`kernels/${file}.wgsl: binding ${r.name} is not a buffer`);
      }
    }
    bindings.sort((a, b) => a.binding - b.binding);
    entries.set(fn.name, { name: fn.name, bindings });
  }
  return { entries, overrides: new Set(reflect.overrides.map((o) => o.name)) };
}

/**
 * Keeps or blanks the feature blocks of a kernel source: lines between
 * `// #if <feature>` and `// #endif` (with an optional `// #else`) compile
 * only when the device has the feature (`subgroups`), so that one file serves
 * adapters with and without it. Dropped lines become empty lines, so compile
 * errors keep their line numbers.
 */
export function selectFeatureBlocks(file: string, source: string, features: ReadonlySet<string>): string {
  const lines = source.split('\n');
  let open: { feature: string; line: number; keep: boolean; inElse: boolean } | null = null;
  const out = lines.map((line, i) => {
    const directive = /^\s*\/\/\s*#(if|else|endif)\b\s*(\S*)\s*$/.exec(line);
    const where = `kernels/${file}.wgsl:${i + 1}`;
    if (directive) {
      const [, kind, feature] = directive;
      if (kind === 'if') {
        if (open) throw new Error(`${where}: nested #if (the #if of line ${open.line} is still open)`);
        if (!feature) throw new Error(`${where}: #if needs a feature name`);
        open = { feature, line: i + 1, keep: features.has(feature), inElse: false };
      } else if (kind === 'else') {
        if (!open || open.inElse) throw new Error(`${where}: #else without an open #if`);
        open.inElse = true;
      } else {
        if (!open) throw new Error(`${where}: #endif without an #if`);
        open = null;
      }
      return '';
    }
    if (!open) return line;
    return open.keep !== open.inElse ? line : '';
  });
  if (open) throw new Error(`kernels/${file}.wgsl:${(open as { line: number }).line}: #if without #endif`);
  return out.join('\n');
}

export function kernelUrl(file: string): URL {
  return packageUrl(`kernels/${file}.wgsl`);
}

/** Loads, validates and reflects one kernel file; compile errors name file and line. */
export async function loadKernel(device: GPUDevice, file: string, source?: string): Promise<KernelModule> {
  const where = `kernels/${file}.wgsl`;
  const code = selectFeatureBlocks(file, source ?? (await readPackageText(kernelUrl(file))), device.features as ReadonlySet<string>);
  // The scope keeps an invalid module's validation error out of the device's
  // uncaptured errors: it is reported below, with file and line. It is popped
  // before any await, so that kernels loaded concurrently keep their own scopes.
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code, label: where });
  const popped = device.popErrorScope();
  const info = await module.getCompilationInfo();
  const scoped = await popped;
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) {
    throw new ShaderCompileError(
      where,
      errors.map((m) => `${where}:${m.lineNum}:${m.linePos}: ${m.message}`),
    );
  }
  if (scoped) throw new ShaderCompileError(where, [scoped.message]);
  return { file, source: code, module, ...reflectKernel(file, code) };
}
