// The kernel tests as a page: every file of test/kernels bundled for the browser, with `vitest` mapped to
// vitest-shim.ts, so the very same cases run against the very same float64 references inside Chromium. The page
// collects the cases when it loads; the Node side then runs them one at a time (kernels.test.ts).
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { browserBuildOptions, checkBrowserGraph, root } from '../../scripts/build-web.mjs';

/** What the page exposes as `globalThis.kernelCases` once it has collected the cases. */
export interface KernelCasesApi {
  cases: { id: number; file: string; name: string }[];
  run(id: number): Promise<string | null>;
}

/** Writes index.html and kernel-cases.js (with every test/kernels/*.test.ts) into `dir`; returns the files bundled. */
export async function buildKernelPage(dir: string): Promise<string[]> {
  const files = readdirSync(join(root, 'test', 'kernels'))
    .filter((f) => f.endsWith('.test.ts'))
    .sort();
  const contents = [
    "import { collectFile, collectedCases, runCase } from './test/browser/vitest-shim.ts';",
    ...files.map((f) => `await collectFile(${JSON.stringify(f)}, () => import(${JSON.stringify(`./test/kernels/${f}`)}));`),
    'globalThis.kernelCases = { cases: collectedCases().map(({ id, file, name }) => ({ id, file, name })), run: runCase };',
  ].join('\n');
  checkBrowserGraph(
    await esbuild.build(
      browserBuildOptions({
        stdin: { contents, resolveDir: root, sourcefile: 'kernel-cases.js', loader: 'js' },
        outfile: join(dir, 'kernel-cases.js'),
        alias: { vitest: './test/browser/vitest-shim.ts' },
      }),
    ),
  );
  writeFileSync(
    join(dir, 'index.html'),
    '<!doctype html>\n<meta charset="utf-8">\n<title>webgpu-nn kernel cases</title>\n<script type="module" src="kernel-cases.js"></script>\n',
  );
  return files;
}
