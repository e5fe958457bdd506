import { describe, expect, it } from 'vitest';
import {
  type BenchEntry,
  type BenchResult,
  benchKernel,
  benchKernelsInTurns,
  entriesOverRuns,
  runsAtTarget,
  runsFigure,
  shareOfPeak,
  steadyRun,
} from '../bench/harness.js';
import type { PointsLayer } from '../src/plot/figure.js';
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

describe("bench:kernels' runs", () => {
  // a result of entry `name` in a run: its share of the FMA peak (the copy peak's a tenth of it) and its host column
  const result = (name: string, pctPeakFlops: number, host: number | null): BenchResult => ({
    name,
    shape: '8x8',
    detail: '',
    samples: 15,
    repeat: 1,
    timer: 'gpu',
    msMedian: 1,
    msMin: 1,
    msMax: 1,
    msQ1: 1,
    msQ3: 1,
    msWallMedian: 1,
    flops: 1,
    bytes: 1,
    gflops: 1,
    gbps: 1,
    pctPeakFlops,
    pctPeakBandwidth: pctPeakFlops / 10,
    host,
  });
  const peak = { gflops: 90, gbps: 9 };

  it("calls a run steady only where every entry's host column is within 95–105%", () => {
    expect(steadyRun({ peak, results: [result('a', 70, 0.95), result('b', 70, 1.05)] })).toBe(true);
    expect(steadyRun({ peak, results: [result('a', 70, 0.94), result('b', 70, 1)] })).toBe(false);
    expect(steadyRun({ peak, results: [result('a', 70, 1), result('b', 70, 1.06)] })).toBe(false);
    expect(steadyRun({ peak, results: [result('a', 70, null)] })).toBe(false);
  });

  it('counts the runs with every entry at a target share of the peak it is bound by, steady and in all', () => {
    const copyBound = { ...result('copy', 5, 1), pctPeakBandwidth: 70 }; // memory-bound: 70% of the copy peak
    expect(shareOfPeak(copyBound)).toBe(70);
    const runs = [
      { peak, results: [result('a', 60, 1), copyBound] }, // steady, both at 60% or more
      { peak, results: [result('a', 59.9, 1), copyBound] }, // steady, a just under
      { peak, results: [result('a', 80, 0.5), copyBound] }, // slowed host, both over
    ];
    expect(runsAtTarget(runs, 60)).toEqual({ steady: { met: 1, of: 2 }, all: { met: 2, of: 3 } });
    expect(runsAtTarget(runs, 81)).toEqual({ steady: { met: 0, of: 2 }, all: { met: 0, of: 3 } });
  });

  it('draws each entry a colour, steady runs as dots and the others as crosses, and the target as a line', () => {
    const runs = [
      { peak, results: [result('a', 60, 1), result('b', 90, 1)] },
      { peak, results: [result('a', 30, 0.8), result('b', 40, 0.8)] },
      { peak, results: [result('a', 70, 1), result('b', 80, 1)] },
    ];
    const [panel] = runsFigure(runs, 'title', 60).panels;
    expect(panel.layers[0]).toMatchObject({ kind: 'hline', value: 60 });
    const points = panel.layers.slice(1) as PointsLayer[];
    expect(points.map((l) => [l.marker, l.label, Array.from(l.x), Array.from(l.y)])).toEqual([
      ['o', 'a 8x8', [1, 3], [60, 70]],
      ['x', undefined, [2], [30]],
      ['o', 'b 8x8', [1, 3], [90, 80]],
      ['x', undefined, [2], [40]],
    ]);
    expect(points[0].color).toBe(points[1].color);
    expect(points[0].color).not.toBe(points[2].color);
    expect(runsFigure(runs, 'title').panels[0].layers.every((l) => l.kind === 'points')).toBe(true);
  });

  it("spreads each entry's shares over the steady runs, or over every run where none was", () => {
    const runs = [
      { peak, results: [result('a', 60, 1), result('b', 90, 1)] },
      { peak, results: [result('a', 30, 0.8), result('b', 40, 0.8)] }, // a slow spell: left out
      { peak, results: [result('b', 80, 0.99), result('a', 70, 1.01)] }, // another order
      { peak, results: [result('a', 65, 1), result('b', 100, 1)] },
    ];
    const [a, b] = entriesOverRuns(runs);
    expect(a).toEqual({
      name: 'a',
      shape: '8x8',
      runs: 3,
      steadyOnly: true,
      pctPeakFlops: { median: 65, min: 60, max: 70 },
      pctPeakBandwidth: { median: 6.5, min: 6, max: 7 },
    });
    expect(b.pctPeakFlops).toEqual({ median: 90, min: 80, max: 100 });
    const unsteady = entriesOverRuns([runs[1], { peak, results: [result('a', 50, 0.9)] }]);
    expect(unsteady).toHaveLength(2);
    expect(unsteady[0]).toMatchObject({ name: 'a', runs: 2, steadyOnly: false, pctPeakFlops: { median: 40, min: 30, max: 50 } });
    expect(unsteady[1]).toMatchObject({ name: 'b', runs: 1, pctPeakFlops: { median: 40, min: 40, max: 40 } });
  });
});
