import { describe, expect, it } from 'vitest';
import { add, fill, scale } from '../../src/shaders/elementwise.js';
import { timeDispatches } from '../../src/tune/measure.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';

const ctx = useGpu();

describe('timeDispatches', () => {
  it("replays recorded dispatches with their own uniforms: each one's time, the whole list's, and what they compute", async () => {
    const { gpu } = ctx;
    const n = 1000;
    const a = upload(
      gpu,
      Float32Array.from({ length: n }, (_, i) => i),
    );
    const [b, y] = [empty(gpu, n), empty(gpu, n)];
    // recorded, not run: b = 3, y = a + b, y = 0.5·y (three kernels, each with its own uniform block)
    const step = gpu.dryRun(() => {
      fill(gpu, b, { n, value: 3 });
      add(gpu, a, b, y, { n });
      scale(gpu, y, y, { n, alpha: 0.5 });
    });
    expect(step.map((d) => d.kernel.name)).toEqual([
      expect.stringMatching(/^fill/),
      expect.stringMatching(/^add/),
      expect.stringMatching(/^scale/),
    ]);
    expect(Array.from(await download(gpu, y, 4))).toEqual([0, 0, 0, 0]); // nothing ran
    const t = await timeDispatches(gpu, step, 3, 0.5);
    expect(t.each).toHaveLength(3);
    for (const ms of [...t.each, t.all]) expect(ms).toBeGreaterThan(0);
    // The replays ran the recorded dispatches with their uniforms: the whole list, timed last, leaves y = (a + 3)/2.
    const got = await download(gpu, y, n);
    for (let i = 0; i < n; i++) expect(got[i]).toBe((i + 3) / 2);
    expect(Array.from(await download(gpu, b, 3))).toEqual([3, 3, 3]);
    for (const buf of [a, b, y]) gpu.pool.release(buf);
  });
});
