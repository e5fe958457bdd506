// Every kernel case of test/kernels, run inside Chromium on its WebGPU (SwiftShader): the same test files, the
// same float64 references, one vitest case per page case. A case fails on its own assertion, on any page
// problem it causes (an uncaught error, a WebGPU validation error reported on the console), or when the page
// did not collect every file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'puppeteer-core';
import { afterAll, describe, expect, it } from 'vitest';
import { startWebServer } from '../../src/web/server.js';
import { launchChromium, openPage } from './chromium.js';
import { buildKernelPage, type KernelCasesApi } from './kernel-page.js';

// Collected before the cases are declared, so vitest lists (and counts) each page case as a case of its own.
const dir = mkdtempSync(join(tmpdir(), 'webgpu-nn-kernel-page-'));
const files = await buildKernelPage(dir);
const server = await startWebServer({ port: 0, mounts: [{ prefix: '/kernel-cases/', dirs: [dir] }] });
const browser: Browser = await launchChromium();
const { page, problems } = await openPage(browser, `${server.url}kernel-cases/`);
await page.waitForFunction(() => (globalThis as { kernelCases?: unknown }).kernelCases, { timeout: 60_000 });
const cases = await page.evaluate(() => (globalThis as unknown as { kernelCases: KernelCasesApi }).kernelCases.cases);

describe('kernel cases in Chromium (WebGPU)', () => {
  afterAll(async () => {
    await browser.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('collects the cases of every kernel test file', () => {
    expect(problems).toEqual([]);
    expect([...new Set(cases.map((c) => c.file))]).toEqual(files);
  });

  for (const c of cases) {
    it(`${c.file} > ${c.name}`, async () => {
      const before = problems.length;
      const failure = await page.evaluate((id) => (globalThis as unknown as { kernelCases: KernelCasesApi }).kernelCases.run(id), c.id);
      expect(failure ?? 'passed').toBe('passed');
      expect(problems.slice(before)).toEqual([]);
    });
  }
});
