// Timing recorded GPU work, for the tuner and the kernel benchmarks alike: GPU timestamps around one compute
// pass where the adapter has them (wall clock to GPU idle otherwise), enough repeats of small work that a
// sample spans many timer ticks (llvmpipe's timestamps tick every 65.5 µs), and medians.
import type { Dispatch, Gpu } from '../gpu/runtime.js';

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The q-quantile of xs (0 ≤ q ≤ 1), interpolating linearly between the two nearest samples. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const at = q * (s.length - 1);
  const lo = Math.floor(at);
  return lo + 1 < s.length ? s[lo] + (at - lo) * (s[lo + 1] - s[lo]) : s[lo];
}

export interface Timed {
  /** GPU time of the recorded work in ms (wall time where the adapter has no timestamps). */
  ms: number;
  /** Wall time from recording to GPU idle, in ms. */
  wall: number;
  timer: 'gpu' | 'wall';
}

/** Runs `record` (dispatches only) once in a timed pass and waits for it. */
export async function timeOnce(gpu: Gpu, record: () => void): Promise<Timed> {
  await gpu.sync();
  const t0 = performance.now();
  const ms = await gpu.timeGpu(record); // waits for the GPU, also without timestamps
  const wall = performance.now() - t0;
  return ms === null ? { ms: wall, wall, timer: 'wall' } : { ms, wall, timer: 'gpu' };
}

// A timed pass must stay in one submit: the runtime's uniform arena holds 1024 dispatches.
const MAX_DISPATCHES_PER_SAMPLE = 900;

/**
 * How many runs of `record` make one sample of at least `minMs`, from a first timed run (after a warm-up
 * that compiled it): one run when it is long enough, else as many as fit the dispatch budget of a sample.
 */
export async function repeatsFor(gpu: Gpu, record: () => void, minMs: number): Promise<number> {
  const before = gpu.counters.dispatches;
  const first = await timeOnce(gpu, record);
  const perRun = Math.max(1, gpu.counters.dispatches - before);
  const maxRepeat = Math.max(1, Math.floor(MAX_DISPATCHES_PER_SAMPLE / perRun));
  return first.ms >= minMs ? 1 : Math.min(maxRepeat, Math.ceil(minMs / Math.max(first.ms, 0.01)));
}

/** One sample: `repeat` runs of `record` in one timed pass; times per run. */
export async function sample(gpu: Gpu, record: () => void, repeat: number): Promise<Timed> {
  const t = await timeOnce(gpu, () => {
    for (let r = 0; r < repeat; r++) record();
  });
  return { ms: t.ms / repeat, wall: t.wall / repeat, timer: t.timer };
}

/** Each of a list of dispatches timed alone, and the list as a whole (medians over rounds; ms per run). */
export interface DispatchTimes {
  /** One per dispatch, in order: the median ms of one run of it alone. */
  each: number[];
  /** The median ms of one run of the whole list. */
  all: number;
}

/**
 * Times recorded dispatches (a step captured by Gpu.dryRun, say) as bench:kernels times a kernel: each one alone,
 * repeated in a timed pass until a sample spans `minMs`, then the whole list the same way, in `rounds` rounds so
 * that a slow spell of the host spreads over all of them. Nothing else may use their buffers meanwhile.
 */
export async function timeDispatches(gpu: Gpu, dispatches: readonly Dispatch[], rounds: number, minMs = 5): Promise<DispatchTimes> {
  const one = (d: Dispatch) => () => gpu.dispatch(d);
  const all = () => {
    for (const d of dispatches) gpu.dispatch(d);
  };
  for (const d of dispatches) await timeOnce(gpu, one(d)); // compiles, warms
  const repeats: number[] = [];
  for (const d of dispatches) repeats.push(await repeatsFor(gpu, one(d), minMs));
  const repeatAll = await repeatsFor(gpu, all, minMs);
  const each: number[][] = dispatches.map(() => []);
  const whole: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [i, d] of dispatches.entries()) each[i].push((await sample(gpu, one(d), repeats[i])).ms);
    whole.push((await sample(gpu, all, repeatAll)).ms);
  }
  return { each: each.map(median), all: median(whole) };
}
