// A static file server for the web page with HTTP Range support (the page
// reads weights by ranges). Serves the repository, so that the built page
// (/web/dist/), the demo weights (/weights/demo/) and the parity cases
// (/test/fixtures/parity/) share one origin. For local use: it binds to
// localhost and refuses paths outside the root.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
};

export function serveStatic(rootDir: string, port = 0): Promise<{ server: Server; url: string }> {
  const root = resolve(rootDir);
  const server = createServer(async (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = resolve(root, `.${pathname.endsWith('/') ? `${pathname}index.html` : pathname}`);
    const info = file.startsWith(root + sep) ? await stat(file).catch(() => null) : null;
    if (!info?.isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    const headers = { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-store' };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!range) {
      res.writeHead(200, { ...headers, 'Content-Length': info.size });
      createReadStream(file).pipe(res);
      return;
    }
    const start = Number(range[1]);
    const end = Math.min(range[2] ? Number(range[2]) : info.size - 1, info.size - 1);
    if (start >= info.size || end < start) {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${info.size}` }).end();
      return;
    }
    res.writeHead(206, { ...headers, 'Content-Length': end - start + 1, 'Content-Range': `bytes ${start}-${end}/${info.size}` });
    createReadStream(file, { start, end }).pipe(res);
  });
  return new Promise((ok) => server.listen(port, '127.0.0.1', () => ok({ server, url: `http://localhost:${(server.address() as { port: number }).port}/` })));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await serveStatic(fileURLToPath(new URL('../', import.meta.url)), Number(process.env.PORT ?? 8080));
  console.log(`page:         ${url}web/dist/`);
  console.log(`demo weights: ${url}weights/demo/ (paste into the URL field; npm run demo builds them)`);
}
