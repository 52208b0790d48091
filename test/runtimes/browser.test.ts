// Chrome: the web page in Debian's headless Chromium (driven by
// playwright-core, never a downloaded browser) on its SwiftShader software
// WebGPU adapter: the parity cases, then the check video made from a picked
// weights folder through the page's own controls, its frames against Node's
// of the same seed, the MP4 download, and a screenshot.
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWeb } from '../../scripts/build-web.ts';
import { serveStatic } from '../../scripts/serve.ts';
import { CHECK_VIDEO } from '../../src/pipeline/check.ts';
import type { GenerateResult } from '../../src/pipeline/generate.ts';
import type { ParityResult } from '../../src/parity/run.ts';
import { FRAME_TOLERANCE, frameDiff, implementedParityCases, nodeCheckRun } from './common.ts';

const root = new URL('../../', import.meta.url).pathname;

/** Debian's chromium package; `npm test` (scripts/setup.js) installs it when run as root. */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags that give headless Chromium a WebGPU adapter on a machine without a GPU (README). */
export const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

const available = existsSync(CHROMIUM);
if (!available && process.env.CI) throw new Error(`${CHROMIUM} is missing: scripts/setup.js installs Debian's chromium when run as root`);

let server: Server;
let pageUrl: string;
let context: BrowserContext;
let page: Page;
let weights: string;
let node: GenerateResult;

beforeAll(async () => {
  if (!available) return;
  ({ weights, node } = await nodeCheckRun());
  await buildWeb();
  const served = await serveStatic(root);
  server = served.server;
  pageUrl = `${served.url}web/dist/`;
  context = await chromium.launchPersistentContext(mkdtempSync(`${tmpdir()}/chromium-`), { executablePath: CHROMIUM, args: CHROMIUM_ARGS, acceptDownloads: true });
  page = await context.newPage();
}, 600_000);

afterAll(async () => {
  await context?.close();
  server?.close();
});

async function waitForPage(timeout: number): Promise<{ status: string; error?: string }> {
  await page.waitForFunction(() => ['done', 'error', 'unsupported'].includes(document.documentElement.dataset.status ?? ''), null, { timeout, polling: 500 });
  return page.evaluate(() => {
    const s = (window as unknown as { kandinsky: { status: string; error?: string } }).kandinsky;
    return { status: s.status, error: s.error };
  });
}

describe.skipIf(!available)('Chrome (headless, SwiftShader WebGPU)', () => {
  it('passes the parity cases', async () => {
    const cases = implementedParityCases();
    await page.goto(`${pageUrl}?cases=/test/fixtures/parity/&${cases.map((c) => `case=${c}`).join('&')}`);
    const state = await waitForPage(480_000);
    expect(state.error).toBeUndefined();
    const parity = await page.evaluate(() => (window as unknown as { kandinsky: { parity: ParityResult[] } }).kandinsky.parity);
    expect(parity.map((p) => p.case)).toEqual(cases);
    expect(parity.filter((p) => p.status !== 'pass')).toEqual([]);
  }, 600_000);

  it('makes the check video from a picked folder within tolerance of Node, plays it and downloads an MP4', async () => {
    await page.goto(pageUrl);
    await page.waitForFunction(() => document.documentElement.dataset.status === 'ready', null, { timeout: 120_000 });
    await page.setInputFiles('#weights-dir', weights);
    await page.fill('#prompt', CHECK_VIDEO.prompt);
    await page.selectOption('#size', String(CHECK_VIDEO.width));
    await page.selectOption('#fps', CHECK_VIDEO.fps);
    await page.fill('#steps', String(CHECK_VIDEO.steps));
    await page.fill('#seed', String(CHECK_VIDEO.seed));
    await page.click('#generate');
    const state = await waitForPage(480_000);
    expect(state).toEqual({ status: 'done', error: undefined });
    const frames = await page.evaluate(() =>
      (window as unknown as { kandinsky: { result: GenerateResult } }).kandinsky.result.frames.map((f) => Array.from(f.data)),
    );
    const diff = frameDiff(frames.map((f) => Uint8Array.from(f)), node.frames.map((f) => f.data));
    console.log(`Chrome vs Node frames: max ${diff.max} levels, mean ${diff.mean.toFixed(4)}`);
    expect(diff.max).toBeLessThanOrEqual(FRAME_TOLERANCE.max);
    expect(diff.mean).toBeLessThanOrEqual(FRAME_TOLERANCE.mean);
    // Every stage reported progress and every frame was shown as it was decoded.
    expect(await page.locator('#stages .stage').count()).toBe(3);
    expect(await page.locator('#frames canvas').count()).toBe(15);

    mkdirSync(`${root}.tmp`, { recursive: true });
    await page.screenshot({ path: `${root}.tmp/browser.png`, fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(download.suggestedFilename()).toBe('kandinsky.mp4');
    const mp4 = readFileSync((await download.path())!);
    expect(mp4.subarray(4, 8).toString('latin1')).toBe('ftyp');
  }, 600_000);
});
