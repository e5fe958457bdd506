// The kernel benchmark harness: validate against a CPU reference, warm up, time many samples, report the
// median next to the adapter's measured peak (an FMA loop for GFLOP/s, a copy loop for GB/s).
//
// A family registers its entries in bench/kernels-<family>.ts (`export const entries: BenchEntry[]`);
// bench/kernels.ts finds those files, runs the entries and prints the table and JSON lines.
import { declareKernel, launch } from '../src/gpu/kernel.js';
import type { Gpu } from '../src/gpu/runtime.js';
import { type Figure, type Layer, TAB10 } from '../src/plot/figure.js';
import type { Cost } from '../src/shaders/op.js';
import { memoKernel } from '../src/shaders/wgsl.js';
import { median, quantile, repeatsFor, sample, timeOnce } from '../src/tune/measure.js';
import { fmaLoopFlops, type HostProbe, peakLoopSize, runFmaLoop } from '../src/tune/probe.js';

export { median } from '../src/tune/measure.js';

/** What an entry's setup returns: buffers are made, inputs uploaded, nothing timed yet. */
export interface BenchCase {
  /** Records the dispatches of one run of the kernel(s); must not wait on the GPU. */
  run(): void;
  /** Runs once more and throws if the result does not match a CPU reference. */
  validate(): Promise<void>;
  /** Releases what setup acquired. */
  dispose(): void;
  /** Shown next to the name, e.g. the kernel version and tile the library chose for this adapter. */
  detail?: string;
}

export interface BenchEntry {
  /** Kernel name, e.g. `matmul_v4` or `linear fc1 backward`; `--filter` matches it and the shape. */
  name: string;
  /** Human-readable problem size, e.g. `512x512x512`. */
  shape: string;
  /** Work of one run(): the same cost function the library exports. */
  cost: Cost;
  /** Timed samples (default 15; `--quick`: 5). Keep at least 15 except for very long runs. */
  samples?: number;
  setup(gpu: Gpu): BenchCase | Promise<BenchCase>;
}

/** Thrown by an entry's setup when it cannot run on this adapter (reported as skipped, not failed). */
export class BenchSkip extends Error {}

export interface Peak {
  gflops: number;
  gbps: number;
}

export interface BenchOptions {
  gpu: Gpu;
  peak?: Peak | null;
  /** Times the FMA loop beside the entries' samples, to say how steady the host held while they ran. */
  probe?: HostProbe | null;
  quick?: boolean;
  /** Timed samples per entry, overriding the entry's own count and `quick`. */
  samples?: number;
}

export interface BenchResult {
  name: string;
  shape: string;
  detail: string;
  samples: number;
  /** Runs recorded per sample (small kernels repeat so a sample spans many timer ticks); times are per run. */
  repeat: number;
  /** 'gpu': timestamp queries around the dispatches; 'wall': CPU clock from recording to sync. */
  timer: 'gpu' | 'wall';
  msMedian: number;
  msMin: number;
  msMax: number;
  /** The samples' first and third quartiles: a wide gap between them says the host disturbed the run. */
  msQ1: number;
  msQ3: number;
  /** Wall-clock per run, recording to GPU idle, median: includes recording, submit and readback overhead. */
  msWallMedian: number;
  flops: number;
  bytes: number;
  gflops: number;
  gbps: number;
  /** Percent of the measured FMA-loop and copy-loop peaks. */
  pctPeakFlops: number | null;
  pctPeakBandwidth: number | null;
  /**
   * The FMA loop's median GFLOP/s in samples taken beside this entry's (after each of its samples, or once a round
   * in turns) over the peak: under about 0.95 the host slowed while the entry ran, and its % columns read low.
   */
  host: number | null;
}

// A sample must span many ticks of the GPU timer (llvmpipe's timestamps tick every 65.5 µs), so small
// kernels run several times per sample, all in the one timed compute pass (src/tune/measure.ts).
const MIN_SAMPLE_MS = 5;

/** An entry set up, validated and warmed up, with its repeats per sample and the samples it wants. */
interface Prepared {
  entry: BenchEntry;
  c: BenchCase;
  repeat: number;
  n: number;
  ms: number[];
  wall: number[];
  timer: 'gpu' | 'wall';
  /** The FMA loop's GFLOP/s in the samples taken beside this entry's. */
  probe: number[];
}

async function prepare(entry: BenchEntry, opts: BenchOptions): Promise<Prepared> {
  const { gpu } = opts;
  const c = await entry.setup(gpu);
  try {
    await c.validate();
    await timeOnce(gpu, () => c.run()); // warm-up: the first dispatch compiles the kernel (llvmpipe: seconds)
    const repeat = await repeatsFor(gpu, () => c.run(), MIN_SAMPLE_MS);
    const n = opts.samples ?? Math.max(1, opts.quick ? Math.min(5, entry.samples ?? 5) : (entry.samples ?? 15));
    return { entry, c, repeat, n, ms: [], wall: [], timer: 'gpu', probe: [] };
  } catch (err) {
    c.dispose();
    throw err;
  }
}

async function takeSample(p: Prepared, gpu: Gpu): Promise<void> {
  const t = await sample(gpu, () => p.c.run(), p.repeat);
  p.ms.push(t.ms);
  p.wall.push(t.wall);
  p.timer = t.timer;
}

function resultOf(p: Prepared, opts: BenchOptions): BenchResult {
  const { entry, ms } = p;
  const msMedian = median(ms);
  const gflops = entry.cost.flops / msMedian / 1e6;
  const gbps = entry.cost.bytes / msMedian / 1e6;
  return {
    name: entry.name,
    shape: entry.shape,
    detail: p.c.detail ?? '',
    samples: p.n,
    repeat: p.repeat,
    timer: p.timer,
    msMedian,
    msMin: Math.min(...ms),
    msMax: Math.max(...ms),
    msQ1: quantile(ms, 0.25),
    msQ3: quantile(ms, 0.75),
    msWallMedian: median(p.wall),
    flops: entry.cost.flops,
    bytes: entry.cost.bytes,
    gflops,
    gbps,
    pctPeakFlops: opts.peak ? (100 * gflops) / opts.peak.gflops : null,
    pctPeakBandwidth: opts.peak ? (100 * gbps) / opts.peak.gbps : null,
    host: opts.peak && p.probe.length ? median(p.probe) / opts.peak.gflops : null,
  };
}

/**
 * Validates, warms up and times one entry, its samples back to back (with `opts.probe`, an FMA-loop sample after
 * each). Throws if validation fails.
 */
export async function benchKernel(entry: BenchEntry, opts: BenchOptions): Promise<BenchResult> {
  const p = await prepare(entry, opts);
  try {
    for (let i = 0; i < p.n; i++) {
      await takeSample(p, opts.gpu);
      if (opts.probe) p.probe.push(await opts.probe.sample());
    }
    return resultOf(p, opts);
  } finally {
    p.c.dispose();
  }
}

/**
 * Validates and warms up every entry, then times them in turns, one sample of each entry a round, so that a
 * slow spell of the host (a shared CPU's neighbours) spreads over all of them instead of landing on one entry's
 * samples (with `opts.probe`, an FMA-loop sample a round). Holds every entry's buffers at once. Each entry's
 * result, or the error that stopped it.
 */
export async function benchKernelsInTurns(entries: readonly BenchEntry[], opts: BenchOptions): Promise<(BenchResult | Error)[]> {
  const prepared: (Prepared | Error)[] = [];
  try {
    for (const e of entries) prepared.push(await prepare(e, opts).catch((err: Error) => err));
    const live = prepared.filter((p): p is Prepared => !(p instanceof Error));
    const probe: number[] = [];
    while (live.some((p) => p.ms.length < p.n)) {
      for (const p of live) if (p.ms.length < p.n) await takeSample(p, opts.gpu);
      if (opts.probe) probe.push(await opts.probe.sample());
    }
    for (const p of live) p.probe = probe;
    return prepared.map((p) => (p instanceof Error ? p : resultOf(p, opts)));
  } finally {
    for (const p of prepared) if (!(p instanceof Error)) p.c.dispose();
  }
}

// ---- several runs -------------------------------------------------------------------------------------------

/** One run of bench:kernels: its peak and its entries' results. */
export interface BenchRun {
  peak: Peak;
  results: readonly BenchResult[];
}

/** The least, median and most of a share over runs (percent), or null where no run had it. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** An entry over several runs: its % of the FMA and copy peaks over the steady runs (all runs where none was). */
export interface EntryOverRuns {
  name: string;
  shape: string;
  /** The runs the spreads are over: the steady ones, or every run where none was steady. */
  runs: number;
  steadyOnly: boolean;
  pctPeakFlops: Spread | null;
  pctPeakBandwidth: Spread | null;
}

/** Within these bounds of the peak, the FMA loop beside an entry's samples says the host held steady (kernels.ts' warnings). */
export const STEADY = 0.95;

/** A run in which the host held steady for every entry: each one's host column within STEADY of the peak, both ways. */
export const steadyRun = (run: BenchRun): boolean => run.results.every((r) => r.host !== null && r.host >= STEADY && r.host <= 1 / STEADY);

/** The entries of several runs, each once, in the order of its first appearance. */
const entriesOf = (runs: readonly BenchRun[]): BenchResult[] => [
  ...new Map(runs.flatMap((run) => run.results.map((r) => [JSON.stringify([r.name, r.shape]), r] as const))).values(),
];

/** Entry `e`'s results in `run`. */
const resultsOf = (run: BenchRun, e: Pick<BenchResult, 'name' | 'shape'>) =>
  run.results.filter((r) => r.name === e.name && r.shape === e.shape);

const spread = (xs: readonly (number | null)[]): Spread | null => {
  const got = xs.filter((x): x is number => x !== null);
  return got.length ? { median: median(got), min: Math.min(...got), max: Math.max(...got) } : null;
};

/**
 * Each entry's shares of the peaks over several runs (in the order of its first appearance): over the runs in
 * which the host held steady for every entry (steadyRun), so that a slow spell of a shared host does not read as
 * the kernel's, or over every run where none did.
 */
export function entriesOverRuns(runs: readonly BenchRun[]): EntryOverRuns[] {
  const steady = runs.filter(steadyRun);
  const over = steady.length ? steady : runs;
  return entriesOf(runs).map(({ name, shape }) => {
    const mine = over.flatMap((run) => resultsOf(run, { name, shape }));
    return {
      name,
      shape,
      runs: mine.length,
      steadyOnly: steady.length > 0,
      pctPeakFlops: spread(mine.map((r) => r.pctPeakFlops)),
      pctPeakBandwidth: spread(mine.map((r) => r.pctPeakBandwidth)),
    };
  });
}

/** An entry's share of the peak it is bound by: the higher of its % of the FMA peak and of the copy peak. */
export const shareOfPeak = (r: BenchResult): number => Math.max(r.pctPeakFlops ?? 0, r.pctPeakBandwidth ?? 0);

/** How many runs had every entry at `pct`% or more of a peak (shareOfPeak): of the steady runs, and of all. */
export function runsAtTarget(
  runs: readonly BenchRun[],
  pct: number,
): { steady: { met: number; of: number }; all: { met: number; of: number } } {
  const met = (run: BenchRun) => run.results.length > 0 && run.results.every((r) => shareOfPeak(r) >= pct);
  const steady = runs.filter(steadyRun);
  return { steady: { met: steady.filter(met).length, of: steady.length }, all: { met: runs.filter(met).length, of: runs.length } };
}

/**
 * Every run's entries as points (x: the run, y: shareOfPeak), a colour an entry, a dot where the host held steady
 * for the run (steadyRun) and a cross where it did not, with the target as a dashed line.
 */
export function runsFigure(runs: readonly BenchRun[], title: string, target?: number): Figure {
  const steadyRuns = runs.map(steadyRun);
  const layers: Layer[] =
    target === undefined ? [] : [{ kind: 'hline', value: target, color: '#555555', dash: 'dashed', label: `target ${target}%` }];
  for (const [k, e] of entriesOf(runs).entries()) {
    for (const steady of [true, false]) {
      const x: number[] = [];
      const y: number[] = [];
      for (const [i, run] of runs.entries()) {
        if (steadyRuns[i] !== steady) continue;
        for (const r of resultsOf(run, e)) {
          x.push(i + 1);
          y.push(shareOfPeak(r));
        }
      }
      const color = TAB10[k % TAB10.length];
      layers.push({
        kind: 'points',
        x,
        y,
        marker: steady ? 'o' : 'x',
        color,
        size: 4,
        ...(steady ? { label: `${e.name} ${e.shape}` } : {}),
      });
    }
  }
  return {
    width: 900,
    height: 520,
    panels: [
      {
        title,
        xLabel: 'run (dots: the host held steady; crosses: it slowed)',
        yLabel: '% of the peak (FMA or copy, the higher)',
        x: { integer: true, min: 0.5, max: runs.length + 0.5 },
        y: { min: 0 },
        grid: true,
        legend: 'best',
        layers,
      },
    ],
  };
}

// ---- the adapter's peak -------------------------------------------------------------------------------------

const PEAK_WG = 64;

const copyKernel = memoKernel(() =>
  declareKernel({
    name: 'peak_copy',
    params: { n4: 'u32', stride: 'u32' },
    buffers: { src: { read: 'vec4f' }, dst: { read_write: 'vec4f' } },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${PEAK_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y * p.stride + g.x;
  if (i < p.n4) { dst[i] = src[i]; }
}`,
  }),
);

/**
 * Measures the adapter's FMA throughput and copy bandwidth (best of `samples` runs each). Software
 * adapters get smaller problems so this takes about a second there.
 */
export async function measurePeak(gpu: Gpu, samples = 7): Promise<Peak> {
  const loop = peakLoopSize(gpu);
  const out = gpu.pool.acquire(loop.invocations * 16, 'peak fma out');
  const fma = () => runFmaLoop(gpu, loop, out);
  const flops = fmaLoopFlops(loop);

  const bytes = Math.min(gpu.isSoftware ? 32 << 20 : 256 << 20, gpu.device.limits.maxStorageBufferBindingSize);
  const n4 = bytes / 16;
  const src = gpu.pool.acquire(bytes, 'peak copy src');
  const dst = gpu.pool.acquire(bytes, 'peak copy dst');
  const groups = n4 / PEAK_WG;
  const gx = Math.min(groups, 32768);
  const gy = Math.ceil(groups / gx);
  const copies = gpu.isSoftware ? 1 : 4;
  const copy = () => {
    for (let r = 0; r < copies; r++) {
      launch(gpu, copyKernel(), { params: { n4, stride: gx * PEAK_WG }, buffers: { src, dst }, workgroups: [gx, gy] });
    }
  };
  try {
    await timeOnce(gpu, fma);
    await timeOnce(gpu, copy);
    const fmaMs: number[] = [],
      copyMs: number[] = [];
    for (let i = 0; i < samples; i++) {
      fmaMs.push((await timeOnce(gpu, fma)).ms);
      copyMs.push((await timeOnce(gpu, copy)).ms);
    }
    // The best sample, not the median: a peak is what the adapter can do, and other work on the machine only
    // ever slows a sample down.
    return { gflops: flops / Math.min(...fmaMs) / 1e6, gbps: (2 * bytes * copies) / Math.min(...copyMs) / 1e6 };
  } finally {
    for (const b of [out, src, dst]) gpu.pool.release(b);
  }
}
