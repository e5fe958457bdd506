// Headless Chromium for the browser tests: Debian's chromium-headless-shell (scripts/setup.sh installs it) with
// WebGPU switched on, driven by puppeteer-core (which downloads no browser). Its WebGPU runs on the SwiftShader
// that Chromium bundles. Every page records what would go unnoticed in a console: uncaught errors, rejected
// promises, failed requests, and console errors and warnings (where Chromium reports WebGPU validation errors).
import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export const CHROMIUM = process.env.WEBGPU_NN_CHROMIUM ?? '/usr/bin/chromium-headless-shell';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} not found: the browser tests need Debian's chromium-headless-shell; run \`bash scripts/setup.sh\` (or set WEBGPU_NN_CHROMIUM to a Chromium binary)`,
    );
  }
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: 'shell',
    // Chromium refuses to run its sandbox as root.
    args: ['--enable-unsafe-webgpu', ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])],
    defaultViewport: { width: 1280, height: 860 },
  });
}

export interface WatchedPage {
  page: Page;
  /** Everything that went wrong in the page so far, one line each. */
  problems: string[];
}

/** A new tab whose problems are recorded from the start; `beforeLoad` runs in the page before its own scripts. */
export async function openPage(browser: Browser, url: string, beforeLoad?: () => void): Promise<WatchedPage> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message ?? e}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  if (beforeLoad) await page.evaluateOnNewDocument(beforeLoad);
  await page.goto(url);
  return { page, problems };
}
