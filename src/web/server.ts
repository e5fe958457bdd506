// The training page's server (`webgpu-nn web`, `npm run web`): static files only, on the loopback address (a
// secure context, so the page gets WebGPU) and nothing outside it. What it serves:
//   /           web/ (the page's HTML and CSS), then dist/web/ (app.js, the page's bundled code, and the
//               embedded digits; built by `npm run build`)
//   /browser/   dist/browser/ (webgpu-nn.js and kernels.js, the engine's browser builds, for pages of your own)
//   /examples/  examples/ (browser.html: the README's page of your own)
// plus any `mounts` a caller adds (the browser tests serve their own pages that way).
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';

export interface WebServer {
  /** http://127.0.0.1:PORT/ */
  url: string;
  close(): Promise<void>;
}

/** A URL prefix ("/" or "/something/") served from the folders listed, the first that has the file winning. */
export interface Mount {
  prefix: string;
  dirs: string[];
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** The package's root folder: the nearest folder above this file with a package.json (from src/ or dist/src/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

/** The page's own mounts: web/ and dist/web/ at /, dist/browser/ at /browser/, examples/ at /examples/. */
export function pageMounts(root = packageRoot()): Mount[] {
  return [
    { prefix: '/browser/', dirs: [join(root, 'dist', 'browser')] },
    { prefix: '/examples/', dirs: [join(root, 'examples')] },
    { prefix: '/', dirs: [join(root, 'web'), join(root, 'dist', 'web')] },
  ];
}

/** The file a request path names under the mounts, or null (never a path outside a mounted folder). */
function lookup(mounts: Mount[], pathname: string): string | null {
  for (const { prefix, dirs } of mounts) {
    if (!pathname.startsWith(prefix)) continue;
    const rest = pathname.slice(prefix.length) || 'index.html';
    for (const dir of dirs) {
      const file = resolve(dir, rest);
      if (!file.startsWith(resolve(dir) + sep)) return null;
      if (existsSync(file) && statSync(file).isFile()) return file;
    }
  }
  return null;
}

/**
 * Serves the page on 127.0.0.1:`port` (0: any free port). `mounts` come before the page's own. Refuses to
 * start (UsageError) when the port is taken or the page is not built.
 */
export async function startWebServer(opts: { port: number; mounts?: Mount[] }): Promise<WebServer> {
  const root = packageRoot();
  const app = join(root, 'dist', 'web', 'app.js');
  if (!existsSync(app)) throw new UsageError(`${app} is missing: build the page first with \`npm run build\``);
  const mounts = [...(opts.mounts ?? []), ...pageMounts(root)];
  const server = createServer((req, res) => {
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      pathname = '';
    }
    const file = req.method === 'GET' || req.method === 'HEAD' ? lookup(mounts, pathname) : null;
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: ${pathname}\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': statSync(file).size,
      // A local development server: always the file as built now, never a cached copy.
      'cache-control': 'no-store',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(e.code === 'EADDRINUSE' ? new UsageError(`--port ${opts.port}: that port is in use; choose another with --port N`) : e),
    );
    server.listen(opts.port, '127.0.0.1', () => ok());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
