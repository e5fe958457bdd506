import { describe, expect, it } from 'vitest';
import { sizeClass } from '../../src/gpu/buffer-pool.js';
import { DROPOUT, dropout, dropoutBackward, pcgHash } from '../../src/shaders/dropout.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { exactBuffer } from '../helpers/exact-buffer.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();
const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));
// The registry's sizes for a map of n elements over pooled buffers (what run() and upload() allocate).
const pooled = (n: number) => ({ n, capacity: sizeClass(4 * n) / 4 });

// x in [0.5, 1.5): never zero, so the mask is recovered from the output as y ≠ 0.
async function run(n: number, p: number, seed: number, step: number, variant?: 'v1' | 'v2') {
  const { gpu } = ctx;
  const x = f(randomArray(n, n + 11, 0.5, 1.5));
  const xb = upload(gpu, x),
    yb = empty(gpu, n);
  dropout(gpu, xb, yb, { n, p, seed, step, variant });
  const y = await download(gpu, yb, n);
  gpu.pool.release(xb);
  gpu.pool.release(yb);
  return { x, y, mask: Uint8Array.from(y, (v) => (v !== 0 ? 1 : 0)) };
}
const kept = (mask: Uint8Array) => mask.reduce((a, b) => a + b, 0);

describe('dropout', () => {
  it('pcgHash (the CPU half of the key) is the 32-bit PCG hash', () => {
    // Values of pcg_hash(0) and pcg_hash(1) computed independently with Python's unbounded integers.
    expect(pcgHash(0)).toBe(129708002);
    expect(pcgHash(1)).toBe(2831084092);
  });

  for (const p of [0.1, 0.25, 0.5, 0.9]) {
    it(`keeps a fraction 1 − p of 100000 elements within 5σ of the binomial, p=${p}`, async () => {
      const n = 100_000;
      const { mask } = await run(n, p, 1234, 7);
      const sigma = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(kept(mask) - n * (1 - p))).toBeLessThanOrEqual(5 * sigma);
      // Neighbouring elements independent: P(m_i = m_{i+1}) = p² + (1 − p)², within 5σ (×1.5: the pairs overlap).
      let same = 0;
      for (let i = 0; i + 1 < n; i++) same += mask[i] === mask[i + 1] ? 1 : 0;
      const q = p * p + (1 - p) * (1 - p);
      expect(Math.abs(same - (n - 1) * q)).toBeLessThanOrEqual(5 * Math.sqrt((n - 1) * q * (1 - q)) * 1.5);
    });
  }

  for (const n of [1, 3, 17, 65, 1000, 100_003]) {
    it(`every variant and the default: forward and backward use one mask, vs the reference, n=${n}`, async () => {
      const { gpu } = ctx;
      const p = 0.3;
      for (const variant of [...runnableVariants(gpu, DROPOUT, pooled(n)), undefined]) {
        const { x, y, mask } = await run(n, p, 42, 3, variant);
        expectClose(y, ref.dropoutApply(x, mask, p), { atol: 0, rtol: 1e-6, label: `forward ${variant ?? 'default'}` });
        const dy = f(randomArray(n, n + 5, 0.5, 1.5));
        const dyb = upload(gpu, dy),
          dxb = empty(gpu, n);
        dropoutBackward(gpu, dyb, dxb, { n, p, seed: 42, step: 3, variant });
        expectClose(await download(gpu, dxb, n), ref.dropoutBackward(dy, mask, p), {
          atol: 0,
          rtol: 1e-6,
          label: `backward ${variant ?? 'default'}`,
        });
        gpu.pool.release(dyb);
        gpu.pool.release(dxb);
      }
    });
  }

  it('v1 and v2 give the same mask; exact-size buffers work', async () => {
    const { gpu } = ctx;
    const n = 1001;
    const a = await run(n, 0.5, 9, 9, 'v1');
    const b = await run(n, 0.5, 9, 9, 'v2');
    expect(Array.from(a.mask)).toEqual(Array.from(b.mask));
    const xb = exactBuffer(gpu, a.x),
      yb = exactBuffer(gpu, new Float32Array(n));
    dropout(gpu, xb, yb, { n, p: 0.5, seed: 9, step: 9 });
    expectClose(await download(gpu, yb, n), a.y, { atol: 0, rtol: 0, label: 'exact-size buffers' });
    xb.destroy();
    yb.destroy();
  });

  it('same (seed, step) reproduces the mask; another step or seed changes it', async () => {
    const n = 20_000,
      p = 0.5;
    const a = await run(n, p, 5, 100);
    const again = await run(n, p, 5, 100);
    expect(Array.from(again.mask)).toEqual(Array.from(a.mask));
    for (const [seed, step] of [
      [5, 101],
      [6, 100],
    ]) {
      const b = await run(n, p, seed, step);
      let differ = 0;
      for (let i = 0; i < n; i++) differ += a.mask[i] !== b.mask[i] ? 1 : 0;
      // independent masks differ in a fraction 2p(1 − p) = 0.5 of the elements
      expect(Math.abs(differ - n * 0.5)).toBeLessThanOrEqual(5 * Math.sqrt(n * 0.25));
    }
  });

  it('p = 0 copies, p = 1 gives zeros', async () => {
    for (const variant of runnableVariants(ctx.gpu, DROPOUT, pooled(1003))) {
      const zero = await run(1003, 0, 1, 1, variant);
      expectClose(zero.y, zero.x, { atol: 0, rtol: 0, label: 'p=0' });
      const one = await run(1003, 1, 1, 1, variant);
      expect(kept(one.mask)).toBe(0);
      expect(one.y.every((v) => v === 0 && !Object.is(v, -0))).toBe(true);
    }
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
