// A small, strict argument parser: declared flags only, so a typo is a usage
// error (exit 2) rather than a silently ignored option.
import { UsageError } from '../errors.ts';

export interface FlagSpec {
  /** 'boolean' flags take no value. */
  type: 'string' | 'number' | 'boolean';
  choices?: readonly string[];
  default?: string | number | boolean;
}

export interface Parsed {
  positional: string[];
  flags: Record<string, string | number | boolean | undefined>;
}

export function parseArgs(command: string, argv: readonly string[], spec: Readonly<Record<string, FlagSpec>>): Parsed {
  const positional: string[] = [];
  const flags: Parsed['flags'] = {};
  for (const [name, s] of Object.entries(spec)) flags[name] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name];
    if (!s) throw new UsageError(`${command}: unknown option --${name}`);
    if (s.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`${command}: --${name} takes no value`);
      flags[name] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`${command}: --${name} needs a value`);
    if (s.choices && !s.choices.includes(value)) throw new UsageError(`${command}: --${name} must be one of ${s.choices.join(', ')}, got '${value}'`);
    if (s.type === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`${command}: --${name} needs a number, got '${value}'`);
      flags[name] = n;
    } else {
      flags[name] = value;
    }
  }
  return { positional, flags };
}
