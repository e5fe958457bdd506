import { describe, expect, it } from 'vitest';
import { FMA_CHAINS, fmaLoopFlops, fmaLoopSum, HostProbe, peakLoopSize } from '../../src/tune/probe.js';
import { useGpu } from '../helpers/gpu.js';

const ctx = useGpu();

describe('the FMA loop', () => {
  it('sums the chains as the closed form of x ← m·x + s says', () => {
    // x_n = mⁿ·x₀ + s·(1 − mⁿ)/(1 − m) for each chain, x₀ = s + c
    const m = [0.999, 0.998, 0.997, 0.996].map(Math.fround);
    for (const [g, n] of [
      [0, 512],
      [1000, 512],
      [16383, 64],
    ]) {
      const s = Math.fround(Math.fround(1e-6) * g);
      const want = m.map((mc) => {
        let sum = 0;
        for (let c = 0; c < FMA_CHAINS; c++) sum += mc ** n * Math.fround(s + c) + (s * (1 - mc ** n)) / (1 - mc);
        return sum;
      });
      const got = fmaLoopSum(g, n);
      for (let k = 0; k < 4; k++) expect(got[k]).toBeCloseTo(want[k], 9);
    }
  });

  it('runs on this adapter as the float64 sums say, and its probe times it', async () => {
    const size = { invocations: 64 * 16, iters: 64 };
    expect(fmaLoopFlops(size)).toBe(64 * 16 * 64 * FMA_CHAINS * 4 * 2);
    expect(fmaLoopFlops(peakLoopSize(ctx.gpu))).toBeGreaterThan(fmaLoopFlops(size));
    const probe = await HostProbe.create(ctx.gpu, size); // throws where the output is wrong
    try {
      for (let k = 0; k < 3; k++) expect(await probe.sample()).toBeGreaterThan(0);
    } finally {
      probe.dispose();
    }
  });
});
