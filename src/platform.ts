// The few things that differ between Node, Deno and browsers besides WebGPU.

declare const Deno:
  | {
      readTextFile(p: string | URL): Promise<string>;
      readDir(p: string | URL): AsyncIterable<{ name: string; isFile: boolean }>;
      stat(p: string): Promise<{ isFile: boolean; isDirectory: boolean }>;
    }
  | undefined;

// The package's own files (kernels/) sit beside src/; a bundle that moves the
// code elsewhere points this at where it serves its copy of them.
let packageRoot = new URL('../', import.meta.url);

/** Where the package's files are read from, e.g. a web bundle's own folder. */
export function setPackageRoot(url: URL): void {
  packageRoot = new URL(url.href.endsWith('/') ? url.href : `${url.href}/`);
}

/** A file or folder shipped with the package, e.g. `kernels/`. */
export function packageUrl(path: string): URL {
  return new URL(path, packageRoot);
}

/** Reads a text file shipped with the package, addressed by URL. */
export async function readPackageText(url: URL): Promise<string> {
  if (url.protocol === 'file:') {
    if (typeof Deno !== 'undefined') return Deno.readTextFile(url);
    const fs = await import('node:fs/promises');
    return fs.readFile(url, 'utf8');
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
}

/** File names in a folder shipped with the package (Node, Deno; browsers read `index.json` there). */
export async function listPackageDir(url: URL): Promise<string[]> {
  if (url.protocol === 'file:') {
    if (typeof Deno !== 'undefined') {
      const names: string[] = [];
      for await (const e of Deno.readDir(url)) if (e.isFile) names.push(e.name);
      return names.sort();
    }
    const fs = await import('node:fs/promises');
    return (await fs.readdir(url)).sort();
  }
  return JSON.parse(await readPackageText(new URL('index.json', url)));
}

/** Whether a local path (Node, Deno) is a file, a folder, or nothing readable. */
export async function pathKind(path: string): Promise<'file' | 'dir' | undefined> {
  const stat = typeof Deno !== 'undefined' ? Deno.stat(path) : (await import('node:fs/promises')).stat(path).then((s) => ({ isFile: s.isFile(), isDirectory: s.isDirectory() }));
  return stat.then(
    (s) => (s.isFile ? 'file' : s.isDirectory ? 'dir' : undefined),
    () => undefined,
  );
}
