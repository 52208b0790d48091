// Deterministic tensor lifetimes: tensors created inside tidy() are disposed
// when it returns, except those it returns. No garbage-collector timing.

export interface Disposable {
  dispose(): void;
}

const scopes: Set<Disposable>[] = [];

export function track(t: Disposable): void {
  scopes.at(-1)?.add(t);
}

/** Removes a tensor from every open scope: its owner disposes it. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if (scopes.some((s) => s.has(value as Disposable))) out.add(value);
  if (Array.isArray(value)) for (const v of value) collect(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, depth + 1);
}

/** Runs fn in a scope; tensors it made and did not return are disposed. fn must be synchronous. */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; await outside it');
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  const returned = new Set<unknown>();
  scopes.push(scope);
  collect(result, returned);
  scopes.pop();
  for (const t of scope) {
    if (returned.has(t)) track(t);
    else t.dispose();
  }
  return result;
}
