import { describe, expect, it } from 'vitest';
import { type BenchEntry, benchKernel, benchKernelsInTurns } from '../bench/harness.js';
import { median, quantile } from '../src/tune/measure.js';
import { fmaLoopFlops, HostProbe } from '../src/tune/probe.js';
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

describe("bench:kernels' host column", () => {
  // the FMA loop itself as the entry (a probe of its own runs it)
  const entry = (probe: HostProbe): BenchEntry => ({
    name: 'FMA loop',
    shape: `${probe.size.invocations}x${probe.size.iters}`,
    cost: { flops: fmaLoopFlops(probe.size), bytes: 0 },
    samples: 3,
    setup: async () => {
      const own = await HostProbe.create(ctx.gpu, probe.size);
      return { run: () => own.run(), validate: async () => {}, dispose: () => own.dispose() };
    },
  });

  it('is the FMA loop beside the samples over the peak, entry by entry and in turns', async () => {
    const gpu = ctx.gpu;
    const probe = await HostProbe.create(gpu);
    try {
      const fast = await probe.sample();
      expect(fast).toBeGreaterThan(0);
      // a peak 1000× the loop's speed: the host column reads about 0.001 (a bound the host's noise cannot reach)
      const peak = { gflops: 1000 * fast, gbps: 1 };
      const one = await benchKernel(entry(probe), { gpu, peak, probe });
      const turns = await benchKernelsInTurns([entry(probe), entry(probe)], { gpu, peak, probe });
      for (const r of [one, ...turns]) {
        if (r instanceof Error) throw r;
        expect(r.host).toBeGreaterThan(0.0001);
        expect(r.host).toBeLessThan(0.01);
      }
      // without the probe (or the peak) there is no host column
      const none = await benchKernel(entry(probe), { gpu, peak });
      expect(none.host).toBeNull();
    } finally {
      probe.dispose();
    }
  });
});
