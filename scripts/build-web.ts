// Builds the web page into web/dist/, a self-contained static folder: the
// page, one ES module bundle (esbuild) and a copy of kernels/ with the
// index.json that browsers read in place of a directory listing.
import { copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../', import.meta.url));
export const WEB_DIST = `${root}web/dist/`;

export async function buildWeb(): Promise<string> {
  await rm(WEB_DIST, { recursive: true, force: true });
  await mkdir(`${WEB_DIST}kernels`, { recursive: true });
  await build({
    entryPoints: [`${root}web/app.ts`],
    outfile: `${WEB_DIST}app.js`,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // Node-only branches (files, Dawn) are behind runtime checks and never run here.
    external: ['node:*'],
    sourcemap: true,
    logLevel: 'error',
  });
  await copyFile(`${root}web/index.html`, `${WEB_DIST}index.html`);
  const kernels = (await readdir(`${root}kernels`)).filter((f) => f.endsWith('.wgsl')).sort();
  for (const k of kernels) await copyFile(`${root}kernels/${k}`, `${WEB_DIST}kernels/${k}`);
  await writeFile(`${WEB_DIST}kernels/index.json`, JSON.stringify(kernels));
  return WEB_DIST;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) console.log(`built ${await buildWeb()}`);
