import { describe, expect, it } from 'vitest';
import { mean, REDUCE_SUM, sum } from '../../src/shaders/reduce.js';
import { randomArray } from '../helpers/compare.js';
import { exactBuffer } from '../helpers/exact-buffer.js';
import { download, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

// Float32 summation error grows with the terms' magnitudes: allow 1e-6 of Σ|x| (~16 ulps of it).
function expectSum(got: number, expected: number, absSum: number, label: string): void {
  const tol = 1e-6 * absSum + 1e-7;
  if (!(Math.abs(got - expected) <= tol)) throw new Error(`${label}: got ${got}, expected ${expected} (tolerance ${tol})`);
}

describe('sum and mean', () => {
  for (const n of [0, 1, 3, 17, 256, 257, 1000, 4099, 92160, 1_000_003]) {
    it(`every variant, n=${n}, pooled (vec4) and exact-size (scalar) buffers`, async () => {
      const { gpu } = ctx;
      const x = Float64Array.from(Float32Array.from(randomArray(n, n + 7, -1, 2)));
      const absSum = ref.sum(x.map(Math.abs));
      for (const variant of runnableVariants(gpu, REDUCE_SUM, { n })) {
        const out = upload(gpu, [123]);
        for (const xb of [upload(gpu, n ? x : [0]), exactBuffer(gpu, n ? x : [0])]) {
          const kind = xb.label.startsWith('exact') ? 'exact' : 'pooled';
          sum(gpu, xb, out, { n, variant });
          expectSum((await download(gpu, out, 1))[0], ref.sum(x), absSum, `sum ${variant} n=${n} ${kind}`);
          if (n > 0) {
            mean(gpu, xb, out, { n, variant });
            expectSum((await download(gpu, out, 1))[0], ref.mean(x), absSum / n, `mean ${variant} n=${n} ${kind}`);
          }
          // accumulate: out += Σx twice on top of 5
          gpu.write(out, new Float32Array([5]));
          sum(gpu, xb, out, { n, variant, accumulate: true });
          sum(gpu, xb, out, { n, variant, accumulate: true });
          expectSum((await download(gpu, out, 1))[0], 5 + 2 * ref.sum(x), 2 * absSum + 5, `sum accumulate ${variant} n=${n} ${kind}`);
          if (kind === 'exact') xb.destroy();
          else gpu.pool.release(xb);
        }
        gpu.pool.release(out);
      }
    });
  }
  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
