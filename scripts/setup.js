#!/usr/bin/env node
// Bootstraps a fresh clone before `npm test`, `npm run demo` and `npm run bench`:
// installs npm packages when node_modules is missing, a software Vulkan
// driver (Mesa 25 lavapipe from Debian bookworm-backports) when no WebGPU
// adapter is found, and Debian's chromium for the browser test when it is
// missing, these two when apt is available. Plain Node, no dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (msg) => console.error(`[setup] ${msg}`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
}

function ensureNodeModules() {
  if (existsSync(join(root, 'node_modules', 'webgpu')) && existsSync(join(root, 'node_modules', 'vitest'))) return;
  log('node_modules missing: npm ci');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

// Probes for an adapter in a child process, so a driver crash cannot take
// this script down and a freshly installed driver is seen.
function probeAdapter() {
  const probe = `
    const { create, globals } = await import('webgpu');
    const gpu = create([]);
    const a = await gpu.requestAdapter();
    if (!a) { console.log('none'); process.exit(0); }
    console.log(JSON.stringify({ device: a.info.device, description: a.info.description }));
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status === 0 && line.startsWith('{')) return JSON.parse(line);
  return null;
}

function aptAvailable() {
  return existsSync('/usr/bin/apt-get') && typeof process.getuid === 'function' && process.getuid() === 0;
}

function addBackports() {
  const deb822 = '/etc/apt/sources.list.d/debian.sources';
  const target = '/etc/apt/sources.list.d/bookworm-backports.sources';
  if (existsSync(target)) return;
  let uri = 'http://deb.debian.org/debian';
  if (existsSync(deb822)) {
    const m = /^URIs:\s*(\S+)/m.exec(readFileSync(deb822, 'utf8'));
    if (m) uri = m[1];
  } else if (existsSync('/etc/apt/sources.list')) {
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(readFileSync('/etc/apt/sources.list', 'utf8'));
    if (m) uri = m[1];
  }
  writeFileSync(
    target,
    `Types: deb\nURIs: ${uri}\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
  );
}

function installLavapipe() {
  const codename = existsSync('/etc/os-release') ? /VERSION_CODENAME=(\w+)/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] : undefined;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (codename === 'bookworm') {
    log('installing Mesa lavapipe from bookworm-backports (Dawn refuses bookworm\'s Mesa 22)');
    addBackports();
    run('apt-get', ['update', '-q'], { env });
    run('apt-get', ['install', '-y', '-q', '-t', 'bookworm-backports', 'mesa-vulkan-drivers'], { env });
  } else {
    log('installing mesa-vulkan-drivers (lavapipe)');
    run('apt-get', ['update', '-q'], { env });
    run('apt-get', ['install', '-y', '-q', 'mesa-vulkan-drivers'], { env });
  }
}

// The browser test drives Debian's chromium (never a browser download).
function ensureChromium() {
  if (existsSync('/usr/bin/chromium') || !aptAvailable()) return;
  log('installing Debian chromium for the browser test');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-q'], { env });
  run('apt-get', ['install', '-y', '-q', 'chromium'], { env });
}

ensureNodeModules();
ensureChromium();
let adapter = probeAdapter();
if (!adapter) {
  if (aptAvailable()) {
    installLavapipe();
    adapter = probeAdapter();
  }
  if (!adapter) {
    console.error(
      [
        'No WebGPU adapter found. Install a Vulkan driver; without a GPU, Mesa 25 lavapipe from Debian bookworm-backports:',
        '  echo "deb http://deb.debian.org/debian bookworm-backports main" | sudo tee /etc/apt/sources.list.d/backports.list',
        '  sudo apt-get update && sudo apt-get install -y -t bookworm-backports mesa-vulkan-drivers',
        '(run this script as root to have it done automatically).',
      ].join('\n'),
    );
    process.exit(1);
  }
}
log(`WebGPU adapter: ${adapter.description || adapter.device}`);
