import { describe, expect, it } from 'vitest';
import { type BenchEntry, benchKernel, benchKernelsInTurns, FMA_PROBE_NAME, fmaLoopSum, fmaProbe, HostProbe } from '../bench/harness.js';
import { median, quantile } from '../src/tune/measure.js';
import { mulberry32 } from '../src/util/random.js';
import { useGpu } from './helpers/gpu.js';

const ctx = useGpu();

describe("bench:kernels' quantiles", () => {
  it('interpolates between the nearest samples, whatever their order', () => {
    // [1, 2, 3, 4]: the quartiles lie a quarter of the way from 1 to 2 and three quarters from 3 to 4
    expect(quantile([3, 1, 4, 2], 0.25)).toBe(1.75);
    expect(quantile([3, 1, 4, 2], 0.75)).toBe(3.25);
    expect(quantile([5], 0.25)).toBe(5);
    expect(quantile([2, 9, 4], 0)).toBe(2);
    expect(quantile([2, 9, 4], 1)).toBe(9);
  });

  it('at one half is the median the tuner and the table use', () => {
    const rand = mulberry32(7);
    for (const n of [1, 2, 15, 16]) {
      const xs = Array.from({ length: n }, () => rand());
      expect(quantile(xs, 0.5)).toBeCloseTo(median(xs), 15);
    }
  });
});

describe("bench:kernels' FMA probe", () => {
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
        for (let c = 0; c < 8; c++) sum += mc ** n * Math.fround(s + c) + (s * (1 - mc ** n)) / (1 - mc);
        return sum;
      });
      const got = fmaLoopSum(g, n);
      for (let k = 0; k < 4; k++) expect(got[k]).toBeCloseTo(want[k], 9);
    }
  });

  it('validates on this adapter and costs what its loop runs', async () => {
    const entry = fmaProbe(ctx.gpu);
    expect(entry.name).toBe(FMA_PROBE_NAME);
    const [invocations, iters] = entry.shape.split('x').map(Number);
    expect(entry.cost.flops).toBe(invocations * iters * 8 * 4 * 2);
    const c = await entry.setup(ctx.gpu);
    try {
      await c.validate();
    } finally {
      c.dispose();
    }
  });
});

describe("bench:kernels' host column", () => {
  // the FMA loop itself as the entry: beside itself, its median over the peak is about 1 on a steady host
  const entry = (gpu: Parameters<typeof fmaProbe>[0]): BenchEntry => ({ ...fmaProbe(gpu), samples: 3 });

  it('is the FMA loop beside the samples over the peak, entry by entry and in turns', async () => {
    const gpu = ctx.gpu;
    const probe = await HostProbe.create(gpu);
    try {
      const fast = await probe.sample();
      expect(fast).toBeGreaterThan(0);
      // a peak 1000× the loop's speed: the host column reads about 0.001 (a bound the host's noise cannot reach)
      const peak = { gflops: 1000 * fast, gbps: 1 };
      const one = await benchKernel(entry(gpu), { gpu, peak, probe });
      const turns = await benchKernelsInTurns([entry(gpu), entry(gpu)], { gpu, peak, probe });
      for (const r of [one, ...turns]) {
        if (r instanceof Error) throw r;
        expect(r.host).toBeGreaterThan(0.0001);
        expect(r.host).toBeLessThan(0.01);
      }
      // without the probe (or the peak) there is no host column
      const none = await benchKernel(entry(gpu), { gpu, peak });
      expect(none.host).toBeNull();
    } finally {
      probe.dispose();
    }
  });
});
