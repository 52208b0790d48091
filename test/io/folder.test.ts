// Folders outside the local file system: picked browser Files (read by Blob
// slices) and URLs (read by HTTP Range requests), as the web page uses them.
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStatic } from '../../scripts/serve.ts';
import { FormatError } from '../../src/errors.ts';
import { fileListFolder, readText, urlFolder } from '../../src/io/folder.ts';
import { loadCase } from '../../src/parity/case.ts';
import { ensureDemoWeights } from '../../src/pipeline/demoWeights.ts';
import { readModelConfigs, releaseFromFiles, resolveWeightsFolder } from '../../src/pipeline/weightsFolder.ts';
import { openT5Checkpoint } from '../../src/models/t5/encoder.ts';
import { T5Tokenizer } from '../../src/text/tokenizer.ts';

const root = new URL('../../', import.meta.url).pathname;
const caseDir = 'test/fixtures/parity/diffusion_v_cosine';
let server: Server;
let base: string;
let ranges: string[] = [];

beforeAll(async () => {
  ({ server, url: base } = await serveStatic(root));
  server.prependListener('request', (req) => ranges.push(req.headers.range ?? 'whole'));
});
afterAll(() => server.close());

function pickedFile(path: string, relative: string): File {
  const file = new File([readFileSync(`${root}${path}`)], relative.split('/').pop()!);
  return Object.defineProperty(file, 'webkitRelativePath', { value: relative });
}

describe('folders', () => {
  it('reads a parity case from a URL by ranges only, never a whole file', async () => {
    ranges = [];
    const c = await loadCase(urlFolder(`${base}${caseDir}`));
    expect(c.spec.name).toBe('diffusion_v_cosine');
    expect(c.inputs.size).toBeGreaterThan(0);
    await c.close();
    expect(ranges.length).toBeGreaterThan(4);
    expect(ranges.filter((r) => !/^bytes=\d+-\d+$/.test(r))).toEqual([]);
    expect(await urlFolder(base).open('no/such/file')).toBeUndefined();
  });

  it('refuses a server that answers a range request with the whole file', async () => {
    const plain = createServer((_, res) => res.end('{"a": 1}')).listen(0, '127.0.0.1');
    await new Promise((ok) => plain.once('listening', ok));
    try {
      const url = `http://127.0.0.1:${(plain.address() as { port: number }).port}/`;
      await expect(urlFolder(url).open('x.json')).rejects.toThrow(FormatError);
      await expect(urlFolder(url).open('x.json')).rejects.toThrow(/x\.json: the server answered a range request with HTTP 200.*Range requests/);
    } finally {
      plain.close();
    }
  });

  it('maps a picked folder by relative path without its top folder, and reads slices', async () => {
    const folder = fileListFolder(
      ['case.json', 'weights.safetensors', 'inputs.safetensors', 'outputs.safetensors'].map((f) => pickedFile(`${caseDir}/${f}`, `diffusion_v_cosine/${f}`)),
      'diffusion_v_cosine',
    );
    const c = await loadCase(folder);
    expect(c.spec.name).toBe('diffusion_v_cosine');
    await c.close();
    const nested = fileListFolder([pickedFile('test/fixtures/tokenizer/config.json', 'weights/flan-ul2/config.json')]);
    const source = (await nested.open('flan-ul2/config.json'))!;
    expect(source.name).toBe('picked files/flan-ul2/config.json');
    expect(JSON.parse(await readText(source, 1 << 20))).toHaveProperty('d_model');
    await expect(loadCase(nested)).rejects.toThrow(/picked files\/case\.json: cannot open: no such file/);
  });

  it('takes a release picked as loose files: checkpoints at the top, the rest as the text encoder', async () => {
    const demo = (await ensureDemoWeights()).replace(/\/$/, '').slice(root.length);
    const names = ['kandinsky_video.safetensors', 'kandinsky_video_interpolation.safetensors', 'movq.safetensors', 'flan-ul2/config.json', 'flan-ul2/tokenizer.json', 'flan-ul2/model.safetensors'];
    const files = names.map((n) => new File([readFileSync(`${root}${demo}/${n}`)], n.split('/').pop()!));
    const release = await resolveWeightsFolder(releaseFromFiles(files));
    expect([release.keyframe, release.interpolation, release.movq, release.textEncoder.name]).toEqual([...names.slice(0, 3), 'picked files/flan-ul2']);
    expect((await T5Tokenizer.fromDir(release.textEncoder)).source).toBe('picked files/flan-ul2/tokenizer.json');
    await (await openT5Checkpoint(release.textEncoder)).close();
    // No top-level config.json among loose files: the released model configurations.
    expect((await readModelConfigs(release.folder)).keyframe.model_channels).toBeGreaterThan(16);
  });
});
