// The browser builds (run by `npm run build` after tsc, which it needs for the data):
//   dist/browser/webgpu-nn.js, kernels.js  the engine and the kernel library as self-contained ES modules, the
//                                          package's `browser` exports (import them from a page as they are)
//   dist/web/app.js                         the training page's code (web/app.ts with the engine inside)
//   dist/web/embedded-digits.u8             the embedded digits for the page (see writeDigits below)
// esbuild bundles them; in the browser graph, src/gpu/platform-node.ts (Dawn) is replaced by
// platform-browser.ts (navigator.gpu), and the build fails if any Node module or Dawn is still reached.
//
//   node scripts/build-web.mjs
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

/** The repository's root folder. */
export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** esbuild options for a browser bundle (entry points and output in `options`), for the tests' pages too. */
export function browserBuildOptions(options) {
  return {
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: root,
    ...options,
    plugins: [browserPlatform, ...(options.plugins ?? [])],
  };
}

/** Puts src/gpu/platform-browser.ts in the place of platform-node.ts (the device's only platform part). */
const browserPlatform = {
  name: 'webgpu-nn-browser-platform',
  setup(build) {
    build.onResolve({ filter: /\/platform-node\.js$/ }, () => ({ path: join(root, 'src', 'gpu', 'platform-browser.ts') }));
  },
};

/** Throws unless the bundle's inputs are free of Node built-ins, Dawn (`webgpu`) and pngjs. */
export function checkBrowserGraph(result) {
  const bad = Object.keys(result.metafile.inputs).filter(
    (p) => p.startsWith('node:') || /node_modules\/(webgpu|pngjs)\//.test(p) || p.endsWith('platform-node.ts'),
  );
  if (bad.length) throw new Error(`the browser build reached Node-only modules: ${bad.join(', ')}`);
  return result;
}

/**
 * The embedded digits for the page, in `webgpu-nn train`'s order (loadEmbeddedDigits): count*784 pixel bytes
 * (0..255, row-major 28x28 images), then count label bytes. Rewritten when the data code changed.
 */
async function writeDigits(file) {
  const source = join(root, 'dist', 'src', 'data', 'dataset.js');
  if (!existsSync(source)) throw new Error(`${relative(root, source)} is missing: run tsc first (npm run build does)`);
  if (existsSync(file) && statSync(file).mtimeMs > statSync(source).mtimeMs) return;
  const { loadEmbeddedDigits } = await import(source);
  const ds = loadEmbeddedDigits();
  const bytes = new Uint8Array(ds.images.length + ds.labels.length);
  bytes.set(ds.images);
  bytes.set(ds.labels, ds.images.length);
  writeFileSync(file, bytes);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const browserDir = join(root, 'dist', 'browser');
  const webDir = join(root, 'dist', 'web');
  mkdirSync(webDir, { recursive: true });
  checkBrowserGraph(
    await esbuild.build(
      browserBuildOptions({ entryPoints: { 'webgpu-nn': 'src/index.ts', kernels: 'src/kernels.ts' }, outdir: browserDir }),
    ),
  );
  checkBrowserGraph(await esbuild.build(browserBuildOptions({ entryPoints: { app: 'web/app.ts' }, outdir: webDir })));
  await writeDigits(join(webDir, 'embedded-digits.u8'));
}
