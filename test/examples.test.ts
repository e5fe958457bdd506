// The README's examples are files in examples/; this runs them as a user would (node, importing the package
// by name) and checks that the README shows them verbatim (browser.html runs in Chromium: test/browser/page.test.ts).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const runExample = (file: string) =>
  execFileSync(process.execPath, [join(root, 'examples', file)], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('README examples', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');

  for (const file of ['tensor-api.mjs', 'kernel-library.mjs', 'browser.html']) {
    it(`README shows examples/${file} verbatim`, () => {
      expect(readme).toContain(readFileSync(join(root, 'examples', file), 'utf8').trim());
    });
  }

  it("tensor-api.mjs: the loss falls over three SGD steps and the gradient has the weight's shape", () => {
    const out = runExample('tensor-api.mjs');
    const losses = [...out.matchAll(/step \d: loss ([\d.]+)/g)].map((m) => Number(m[1]));
    expect(losses).toHaveLength(3);
    expect(losses[2]).toBeLessThan(losses[0]);
    const grad = JSON.parse(/dloss\/dw (\[.*\])/.exec(out.replace(/\n/g, ' '))![1].replace(/ /g, ''));
    expect(grad).toHaveLength(6);
  });

  it("kernel-library.mjs: relu(a · b) on the caller's own device and buffers", () => {
    // a = [[1,2,3],[4,5,6]], b = [[1,-1],[0,1],[-1,0]]: a·b = [[-2,1],[-2,1]], relu → [0,1,0,1]
    expect(runExample('kernel-library.mjs')).toMatch(/relu\(a · b\) = \[ 0, 1, 0, 1 \]/);
  });
});
