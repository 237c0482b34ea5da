// A static server on localhost for the web tests (browser.mjs,
// first_visit.mjs): serves DIST on 127.0.0.1 (any free port) as a static
// server would, each file cacheable after revalidation (`Last-Modified`,
// `Cache-Control: no-cache`), so that a second visit uses the browser's
// cache (and its cache of compiled wasm).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm',
  '.woff2': 'font/woff2', '.png': 'image/png',
};

/** Serves `dist`; resolves to {origin, server} once it listens. */
export async function serve(dist) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    const file = join(dist, path.endsWith('/') ? `${path}index.html` : path);
    if (!file.startsWith(dist)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(file);
      const modified = (await stat(file)).mtime.toUTCString();
      if (req.headers['if-modified-since'] === modified) { res.writeHead(304).end(); return; }
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'last-modified': modified,
        'cache-control': 'no-cache',
      }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { origin: `http://127.0.0.1:${server.address().port}`, server };
}
