// Key maps between two checkpoint layouts of the same weights, kept as data
// (weights/keymaps/*.json) and applied here, in either direction.
//
// Format: {"variables": {name: what}, "components": {name: {"rules": table,
// "upstream": file, "diffusers": file, "diffusers_only": [keys]}},
// "tables": {name: [rule, ...]}}. A rule is {"upstream": pattern,
// "diffusers": pattern, "then"?: table, "reshape"?: "conv1x1"}. A pattern
// ending in '.' (or empty) matches a key's prefix, and the rest of the key is
// mapped by the `then` table, or kept as it is without one; any other pattern
// matches the whole (remaining) key. `{expr}` in a pattern matches a decimal
// number: expr is one rule variable, plus or minus integers and the map's
// variables (e.g. {j+1}, {levels-1-i}); the other side is computed from the
// variable's value. Rules are tried in order, the first match wins, and a
// key is accepted only if mapping it back gives the key again, so every
// accepted key has exactly one counterpart. "conv1x1": a [O, I, 1, 1] conv
// upstream is a [O, I] matrix on the other side (same bytes).
import { FormatError, WeightError } from '../errors.ts';
import type { Checkpoint, TensorEntry } from './checkpoint.ts';

export type KeyLayout = 'upstream' | 'diffusers';
export type Reshape = 'conv1x1';

function other(layout: KeyLayout): KeyLayout {
  return layout === 'upstream' ? 'diffusers' : 'upstream';
}

/** One `{...}` placeholder: value = sign·variable + sum of the terms. */
interface Placeholder {
  variable: string;
  sign: 1 | -1;
  terms: { sign: 1 | -1; value: number | string }[];
}

interface Pattern {
  /** Literal pieces around the placeholders: pieces.length = placeholders.length + 1. */
  pieces: string[];
  placeholders: Placeholder[];
  prefix: boolean;
  regex: RegExp;
}

interface Rule {
  patterns: Record<KeyLayout, Pattern>;
  then: string | null;
  reshape: Reshape | null;
}

export interface MappedKey {
  key: string;
  /** Reshapes met on the way (at most one in practice). */
  reshape: Reshape | null;
}

export type KeyVariables = Readonly<Record<string, number>>;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parsePattern(text: string, variables: ReadonlySet<string>, where: string): Pattern {
  const pieces: string[] = [];
  const placeholders: Placeholder[] = [];
  let rest = text;
  for (let open = rest.indexOf('{'); open >= 0; open = rest.indexOf('{')) {
    const close = rest.indexOf('}', open);
    if (close < 0) throw new FormatError(where, `unclosed '{' in pattern '${text}'`);
    pieces.push(rest.slice(0, open));
    const expr = rest.slice(open + 1, close).replace(/\s+/g, '');
    const tokens = expr.match(/[+-]?[^+-]+/g) ?? [];
    if (tokens.join('') !== expr || tokens.length === 0) throw new FormatError(where, `bad expression {${expr}} in pattern '${text}'`);
    let variable: { name: string; sign: 1 | -1 } | null = null;
    const terms: Placeholder['terms'] = [];
    for (const token of tokens) {
      const sign = token.startsWith('-') ? -1 : 1;
      const body = token.replace(/^[+-]/, '');
      if (/^\d+$/.test(body)) terms.push({ sign, value: Number(body) });
      else if (!/^[A-Za-z_]\w*$/.test(body)) throw new FormatError(where, `bad term '${body}' in {${expr}} of pattern '${text}'`);
      else if (variables.has(body)) terms.push({ sign, value: body });
      else if (variable) throw new FormatError(where, `{${expr}} in pattern '${text}' has two rule variables (${variable.name}, ${body}); one is allowed`);
      else variable = { name: body, sign };
    }
    if (!variable) throw new FormatError(where, `{${expr}} in pattern '${text}' has no rule variable`);
    placeholders.push({ variable: variable.name, sign: variable.sign, terms });
    rest = rest.slice(close + 1);
  }
  pieces.push(rest);
  const prefix = text === '' || text.endsWith('.');
  const body = pieces.map(escapeRegex).join('(\\d+)');
  return { pieces, placeholders, prefix, regex: new RegExp(`^${body}${prefix ? '' : '$'}`) };
}

function termsValue(p: Placeholder, vars: KeyVariables, where: string): number {
  let v = 0;
  for (const t of p.terms) {
    const value = typeof t.value === 'number' ? t.value : vars[t.value];
    if (value === undefined) throw new WeightError(`${where}: key map variable '${t.value}' has no value`);
    v += t.sign * value;
  }
  return v;
}

export class KeyMap {
  private constructor(
    readonly source: string,
    private readonly tables: ReadonlyMap<string, Rule[]>,
    readonly components: Readonly<Record<string, { rules: string; diffusersFile: string; diffusersOnly: readonly string[] }>>,
  ) {}

  static parse(raw: unknown, source: string): KeyMap {
    const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
    if (!isObject(raw) || !isObject(raw.tables) || !isObject(raw.components)) throw new FormatError(source, 'a key map needs "tables" and "components" objects');
    const variables = new Set(Object.keys(isObject(raw.variables) ? raw.variables : {}));
    const tables = new Map<string, Rule[]>();
    for (const [name, rules] of Object.entries(raw.tables)) {
      if (!Array.isArray(rules)) throw new FormatError(source, `table '${name}' must be a list of rules`);
      tables.set(
        name,
        rules.map((r: unknown, i) => {
          const where = `${source}: tables.${name}[${i}]`;
          if (!isObject(r) || typeof r.upstream !== 'string' || typeof r.diffusers !== 'string') throw new FormatError(where, 'a rule needs string "upstream" and "diffusers" patterns');
          if (r.reshape !== undefined && r.reshape !== 'conv1x1') throw new FormatError(where, `unknown reshape ${JSON.stringify(r.reshape)} (known: "conv1x1")`);
          if (r.then !== undefined && typeof r.then !== 'string') throw new FormatError(where, '"then" must name a table');
          const patterns = { upstream: parsePattern(r.upstream, variables, where), diffusers: parsePattern(r.diffusers, variables, where) };
          const vars = (p: Pattern) => [...new Set(p.placeholders.map((h) => h.variable))].sort().join();
          if (vars(patterns.upstream) !== vars(patterns.diffusers)) throw new FormatError(where, 'both patterns must use the same rule variables');
          if (patterns.upstream.prefix !== patterns.diffusers.prefix) throw new FormatError(where, 'both patterns must be prefixes (ending in ".") or both whole keys');
          if (r.then !== undefined && !patterns.upstream.prefix) throw new FormatError(where, '"then" needs prefix patterns');
          return { patterns, then: (r.then as string | undefined) ?? null, reshape: (r.reshape as Reshape | undefined) ?? null };
        }),
      );
    }
    for (const [name, rules] of tables) {
      for (const r of rules) if (r.then !== null && !tables.has(r.then)) throw new FormatError(source, `table '${name}' refers to unknown table '${r.then}'`);
    }
    const components: Record<string, { rules: string; diffusersFile: string; diffusersOnly: string[] }> = {};
    for (const [name, c] of Object.entries(raw.components)) {
      if (!isObject(c) || typeof c.rules !== 'string' || !tables.has(c.rules)) throw new FormatError(source, `component '${name}' must name its rules table`);
      const only = c.diffusers_only ?? [];
      if (!Array.isArray(only) || !only.every((k) => typeof k === 'string')) throw new FormatError(source, `component '${name}': diffusers_only must be a list of keys`);
      components[name] = { rules: c.rules, diffusersFile: String(c.diffusers ?? ''), diffusersOnly: only };
    }
    return new KeyMap(source, tables, components);
  }

  /** Reads a key map file (JSON). */
  static async read(file: string): Promise<KeyMap> {
    const fs = await import('node:fs/promises');
    let raw: unknown;
    try {
      raw = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch (e) {
      throw new FormatError(file, `cannot read the key map: ${(e as Error).message}`);
    }
    return KeyMap.parse(raw, file);
  }

  private component(name: string) {
    const c = this.components[name];
    if (!c) throw new WeightError(`${this.source}: no component '${name}' (components: ${Object.keys(this.components).join(', ')})`);
    return c;
  }

  private mapWith(table: string, key: string, from: KeyLayout, vars: KeyVariables): MappedKey | undefined {
    const to = other(from);
    for (const rule of this.tables.get(table)!) {
      const src = rule.patterns[from];
      const m = src.regex.exec(key);
      if (!m) continue;
      const values = new Map<string, number>();
      let consistent = true;
      src.placeholders.forEach((p, i) => {
        // value = sign·v + terms  →  v = sign·(value − terms)
        const v = p.sign * (Number(m[i + 1]) - termsValue(p, vars, this.source));
        if (values.has(p.variable) && values.get(p.variable) !== v) consistent = false;
        values.set(p.variable, v);
      });
      if (!consistent || [...values.values()].some((v) => !Number.isInteger(v) || v < 0)) continue;
      const dst = rule.patterns[to];
      let head = dst.pieces[0];
      dst.placeholders.forEach((p, i) => {
        head += String(p.sign * values.get(p.variable)! + termsValue(p, vars, this.source)) + dst.pieces[i + 1];
      });
      const rest = key.slice(m[0].length);
      if (rule.then === null) return { key: head + rest, reshape: rule.reshape };
      const inner = this.mapWith(rule.then, rest, from, vars);
      if (inner) return { key: head + inner.key, reshape: inner.reshape ?? rule.reshape };
    }
    return undefined;
  }

  /** The counterpart of a key of `component` in the other layout, or undefined when no rule maps it both ways. */
  mapKey(component: string, key: string, from: KeyLayout, vars: KeyVariables = {}): MappedKey | undefined {
    const rules = this.component(component).rules;
    const there = this.mapWith(rules, key, from, vars);
    if (!there) return undefined;
    const back = this.mapWith(rules, there.key, other(from), vars);
    return back?.key === key ? there : undefined;
  }

  /** Keys a layout holds that have no counterpart and are deliberately dropped. */
  isDroppedKey(component: string, key: string, layout: KeyLayout): boolean {
    return layout === 'diffusers' && this.component(component).diffusersOnly.includes(key);
  }

  /** Components whose diffusers keys share one file with `component` (e.g. the U-Net and the projection). */
  sharingFile(component: string): string[] {
    const file = this.component(component).diffusersFile;
    return Object.keys(this.components).filter((n) => n !== component && file !== '' && this.components[n].diffusersFile === file);
  }
}

/** The shape a tensor has on the `to` side of a reshape. */
export function mappedShape(shape: readonly number[], reshape: Reshape | null, to: KeyLayout, where: string): number[] {
  if (reshape === null) return [...shape];
  if (to === 'diffusers') {
    if (shape.length !== 4 || shape[2] !== 1 || shape[3] !== 1) throw new WeightError(`${where}: expected a 1×1 conv kernel [O, I, 1, 1], got [${shape.join(', ')}]`);
    return [shape[0], shape[1]];
  }
  if (shape.length !== 2) throw new WeightError(`${where}: expected a matrix [O, I] for a 1×1 conv, got [${shape.join(', ')}]`);
  return [shape[0], shape[1], 1, 1];
}

export interface MappedCheckpointOptions {
  /** Layout of the stored keys; the view shows the other one. */
  from: KeyLayout;
  vars?: KeyVariables;
  /** Only stored keys under this prefix belong to the component (stripped in the view). */
  prefix?: string;
}

/**
 * A view of one component of a stored checkpoint under the other layout's
 * names. Strict: a stored key that no rule maps (and that neither the map
 * drops nor another component of the same file claims) is an error listing
 * every such key. Tensors are read from the stored file on demand.
 */
export function mappedCheckpoint(ckpt: Checkpoint, keymap: KeyMap, component: string, options: MappedCheckpointOptions): Checkpoint {
  const { from } = options;
  const to = other(from);
  const vars = options.vars ?? {};
  const prefix = options.prefix ?? '';
  const entries = new Map<string, TensorEntry>();
  const unmapped: string[] = [];
  const neighbours = from === 'diffusers' ? keymap.sharingFile(component) : [];
  for (const stored of ckpt.keys()) {
    if (!stored.startsWith(prefix)) continue;
    const key = stored.slice(prefix.length);
    const m = keymap.mapKey(component, key, from, vars);
    if (!m) {
      const claimed = keymap.isDroppedKey(component, key, from) || neighbours.some((n) => keymap.mapKey(n, key, from, vars));
      if (!claimed) unmapped.push(stored);
      continue;
    }
    const e = ckpt.get(stored)!;
    const shape = mappedShape(e.shape, m.reshape, to, `${ckpt.source}: '${stored}'`);
    entries.set(m.key, { name: m.key, dtype: e.dtype, shape, byteLength: e.byteLength, read: () => e.read() });
  }
  if (unmapped.length) {
    const shown = unmapped.slice(0, 50).map((k) => `  ${k}`);
    if (unmapped.length > 50) shown.push(`  ... and ${unmapped.length - 50} more`);
    throw new WeightError(
      [`${ckpt.source}: ${unmapped.length} ${from} key(s) of the ${component} have no ${to} counterpart in ${keymap.source}:`, ...shown].join('\n'),
    );
  }
  return {
    source: `${ckpt.source} (${component}, ${from} keys read as ${to})`,
    keys: () => [...entries.keys()],
    get: (name) => entries.get(name),
    metadata: ckpt.metadata,
    close: () => ckpt.close(),
  };
}

/** A view of a checkpoint with `prefix` added to every key (e.g. a bare projection dict read as `t5.*`). */
export function prefixedCheckpoint(ckpt: Checkpoint, prefix: string): Checkpoint {
  return {
    source: ckpt.source,
    keys: () => ckpt.keys().map((k) => prefix + k),
    get: (name) => (name.startsWith(prefix) ? ckpt.get(name.slice(prefix.length)) : undefined),
    metadata: ckpt.metadata,
    close: () => ckpt.close(),
  };
}

/** The project's Kandinsky 3 ↔ diffusers key map (weights/keymaps/kandinsky3-diffusers.json). */
export async function kandinsky3DiffusersKeyMap(): Promise<KeyMap> {
  const { fileURLToPath } = await import('node:url');
  return KeyMap.read(fileURLToPath(new URL('../../weights/keymaps/kandinsky3-diffusers.json', import.meta.url)));
}

