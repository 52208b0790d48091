// The few things that differ between Node, Deno and browsers besides WebGPU.

declare const Deno: { readTextFile(p: string | URL): Promise<string>; readDir(p: string | URL): AsyncIterable<{ name: string; isFile: boolean }> } | undefined;

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
