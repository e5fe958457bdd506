// Kernel choices by measurement. For each (op, sizes) that a step meets and that has more than one way to
// run here (`op.choices`: every variant this adapter can run, each with its tile configurations), the tuner
// times them all on the step's own data and keeps the fastest; op.run then uses that choice for those sizes
// (shaders/op.ts consults `gpu.tuning`). Ops that are forced (`sizes.variant`) are never tuned.
//
// Why a planning pass: timing needs GPU waits, which a synchronous op.run cannot make mid-step. So
// `collect(record)` runs one step with the tuner watching: every op call whose sizes have no tuned choice
// yet has its buffers copied on the GPU just before it runs (its inputs, and what it accumulates into);
// `tune(...)` then replays each call on those copies, never on the caller's buffers. The trainer runs the
// planning step on a throwaway model (Trainer.prepare), so tuning changes nothing of the run it prepares.
//
// Every candidate of the calls that matter is compiled before any is timed, on two devices at once where the
// driver allows (gpu/precompile.ts): a first tuning of the seed's run on empty Mesa and tuning caches took 46 s
// instead of 67 s (llvmpipe, 2026-12-01), most of it compiling.
//
// Every candidate is validated once before it may win: run on the same copies as the op's first variant
// (the fallback, itself tested against float64 references), every buffer it touches must match within a
// float tolerance; a candidate that does not is reported and never chosen. Timing alternates the candidates
// round by round (a burst of other work is spread over every candidate) and ranks them by their median
// sample: not their best, because a timed pass can also read too short (llvmpipe), and one such sample once
// chose a conv2d tile that ran 1.7x slower than the heuristics' in the step. A candidate slower than 3x the
// best after the first round is dropped.
//
// Near ties go to the smaller kernel, in proportion to how much smaller it is: a candidate whose dispatched
// WGSL is shorter than the fastest's wins if it is within 5% of it (about the noise of these measurements)
// where the fastest has twice its WGSL or more, and within proportionally less where the fastest is longer by
// less (within 0.4% where it is 8% longer). Unrolled tiles compile in time that grows with their size (llvmpipe:
// 0.5 s for a 2x8 matmul tile, 4-20 s for 4x16), and a machine's first run pays it; a kernel a few percent
// longer costs a few percent more, and a flat 5% margin gave conv1's weight gradient to the kernel 8% shorter
// and 6-10% slower in two tunings of five. Among kernels of the fastest's size, the one offered first within 5%
// (the heuristics' choice comes first): they differ in their launch only, as backward-weight's row slicings
// do, and ranking them by time let the noise pick one slicing in one tuning and another in the next, and so
// another rounding of the whole run (pickTuned).
//
// A close call is measured again: where candidates besides the fastest are within 10% of it after the rounds,
// those candidates take as many rounds again and are ranked by the median of all their samples.
//
// A call timed while the host was slow is timed again. Between rounds the tuner runs the FMA loop (probe.ts), which
// needs no memory, so that its median over a call's rounds against its steady rate (the highest such median of the
// tuning) says how much of the CPU the host left the adapter meanwhile. On llvmpipe a slow host does not slow every
// candidate alike: with one of the two vCPUs taken, a dispatch split over two threads waits for the slow one, and a
// candidate of one workgroup does not. In 19 first tunings on one machine (2026-12-01) conv1's weight gradient was
// given its one-workgroup tile, 1.45x slower in a steady step, in ten. Where that share is under 90%, and the
// runner-up is within as much of the fastest candidate as the loop was slowed, the call is timed again after the
// other calls (the host's slow spells last seconds to minutes; the first pass of a first tuning is often slow), at
// most three times in all and within as much time again as the first pass took, and keeps its steadiest try; one
// still unsteady is reported with a warning.
//
// Only the calls that matter are tuned: each observed call is first timed with the heuristics' choice, and
// calls below `minShare` of the run's total (calls tuned before counting with their cached times) are not
// (their cache entry says `kept`), so a first run does not compile every tile of every small kernel. Such a
// call takes the choice of the same op's heaviest tuned call, this time or before, that runs the same kernels
// with it, checked as a candidate is (the last batch of an epoch, smaller than the others, then runs the
// others' kernels: with the heuristics' choice instead, a tuned bench:train compiled 28 pipelines where an
// untuned one compiled 21), else the heuristics' choice.
//
// The choices live in a TuningCache (cache.ts: one JSON file per adapter).
import { DeviceLostError, GpuError, ShaderCompileError } from '../errors.js';
import { precompile } from '../gpu/precompile.js';
import type { Gpu } from '../gpu/runtime.js';
import type { AnyOpLike, Choice, Op, TuneConfig, TuningHook } from '../shaders/op.js';
import { median, repeatsFor, sample, timeOnce } from './measure.js';
import { HostProbe, peakLoopSize } from './probe.js';

/** A tuned choice and what the measurement found. */
export interface TunedEntry extends Choice {
  /** Median ms per run of the chosen candidate. */
  ms: number;
  /** What the heuristics would have run, and its median ms (null: it was not timed, e.g. invalid). */
  heuristic: Choice & { ms: number | null };
  /** Candidates offered. */
  candidates: number;
  /**
   * Not tuned, because the call took too small a share of the step: it keeps the heuristics' choice, or the
   * choice of the same op's heaviest tuned call where that is offered for its sizes (then `heuristic` differs).
   */
  kept?: true;
}

/** Where the choices are kept (a file per adapter: cache.ts; in memory: a Map). */
export interface TuningStore {
  get(key: string): TunedEntry | undefined;
  set(key: string, entry: TunedEntry): void;
  /** Persists what was set (the file store writes its file; others may do nothing). */
  save(): void;
}

// biome-ignore lint/suspicious/noExplicitAny: ops of every kind pass through the tuner
type AnyOp = Op<any, any, string>;

/** One op call met while collecting: the op, its sizes and the GPU copies of its buffers before it ran. */
export interface Observed {
  key: string;
  op: AnyOp;
  sizes: object;
  /** The call's buffers with every GPUBuffer replaced by its copy (same shape as the op's buffers object). */
  buffers: unknown;
  /** The distinct copies, with the size copied; `exact`: bit patterns, compared bit for bit (the op's `exact`). */
  copies: { buffer: GPUBuffer; bytes: number; exact: boolean }[];
  /** How many times the run makes this call per time the planning pass does (its share of the run's time). */
  weight: number;
}

/** What tuning one (op, sizes) found, for reports. */
export interface TuneReport {
  key: string;
  op: string;
  entry: TunedEntry;
  /** Candidates that failed validation, and why. */
  invalid: { choice: Choice; why: string }[];
  /**
   * Every candidate's median ms (null: invalid) and, where it was tuned, how many samples it has (1 where the first
   * round dropped it; twice the rounds in a close call). A call that is not tuned has its one choice's time.
   */
  times: { choice: Choice; ms: number | null; samples?: number }[];
  /**
   * Where the tuner probed the host: the FMA loop's median rate over the kept try's rounds as a share of the steadiest
   * such median of the tuning (under 0.9: the host was slow), and how many tries the call took.
   */
  host?: { steady: number; tries: number };
}

/** What the tuner times between rounds to tell a steady host from a slowed one: HostProbe, or a stand-in (tests). */
export interface SteadinessProbe {
  /** One run's rate (any unit; GFLOP/s for HostProbe). */
  sample(): Promise<number>;
}

export interface TuneOptions {
  /** Timed samples per surviving candidate (default 7; as many again for the candidates within 10% of the fastest). */
  samples?: number;
  /** Calls taking less than this share of the run's time (the observed calls' times by their weights) keep the heuristics' choice (default 0.02; 0 tunes all). */
  minShare?: number;
  /** Shortest sample in ms: short kernels repeat until a sample takes this long (default 3). */
  minSampleMs?: number;
  /** How close (relative) to the fastest a shorter kernel wins (pickTuned; default 0.05; 0: the fastest always). */
  nearTie?: number;
  /** Candidates this close (relative) to the fastest after the rounds take as many rounds again (default 0.1). */
  closeCall?: number;
  /** After the first round, candidates more than this many times slower than the fastest are dropped (default 3). */
  dropOver?: number;
  /** Called with a line of progress. */
  log?: (line: string) => void;
  /** Times the host's steadiness between rounds (default: the FMA loop; null: no probe, no retries). */
  probe?: SteadinessProbe | null;
}

/** Sizes fields that force a choice instead of describing the problem; they are not part of a key. */
const FORCING = /^(variant|.*Variant|tile|registerTile|subgroupTile)$/;

/**
 * The cache key of an op call: the op's name and its sizes, sorted, without forcing fields; an object field
 * (such as a fused dropout's seed and step) counts only by its presence, and a false flag as its absence.
 */
export function tuningKey(op: AnyOpLike, sizes: object): string {
  const fields = Object.entries(sizes)
    .filter(([k, v]) => !FORCING.test(k) && v !== undefined && v !== null && v !== false && typeof v !== 'function')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${op.name} ${fields.map(([k, v]) => `${k}=${typeof v === 'object' ? 'on' : v}`).join(' ')}`;
}

export const choiceLabel = (c: Choice): string =>
  c.config
    ? `${c.variant} ${Object.entries(c.config)
        .map(([k, v]) => `${k}${v}`)
        .join(' ')}`
    : c.variant;

/** Errors that say the device or a kernel is broken, which tuning must not hide. */
const fatal = (e: unknown) => e instanceof GpuError || e instanceof DeviceLostError || e instanceof ShaderCompileError;

/** How close (relative) to the fastest a candidate must be to win for a shorter kernel; see pickTuned. */
const NEAR_TIE = 0.05;

/** Candidates this close to the fastest (relative) after the rounds are timed again as many rounds. */
const CLOSE_CALL = 0.1;

/** After the first round, a candidate this many times slower than the fastest cannot win and is dropped. */
const DROP_OVER = 3;

/** Under this share of the tuning's steady rate, the probe's median over a call's rounds says the host was slow. */
const STEADY = 0.9;

/** Tries a call may take while the host is slow (see the top of this file). */
const TRIES = 3;

/**
 * Whether a try's time may have been reordered by a slow host: the probe's median over its rounds under STEADY of
 * the steady rate (the highest such median of the tuning), and the runner-up within as much of the fastest
 * candidate as the probe was slowed (a call with one valid candidate, or a winner further ahead, keeps its choice
 * whatever the host did).
 */
function unsteady(t: { report: TuneReport; rate: number }, steadyRate: number): boolean {
  if (!(t.rate < STEADY * steadyRate)) return false;
  const ms = t.report.times.flatMap((c) => (c.ms === null ? [] : [c.ms])).sort((a, b) => a - b);
  return ms.length > 1 && ms[1] <= (ms[0] * steadyRate) / t.rate;
}

/**
 * The choice tuning keeps, from its timed candidates in the order they were offered: the fastest median,
 * unless a shorter kernel is near it. A candidate with less WGSL than the fastest is near within
 * `nearTie` × min(1, extra), `extra` being how much longer (relative) the fastest's WGSL is than its own; one of
 * the fastest's size, within `nearTie`. Of those near, the one with the least WGSL wins, and of equal sizes the
 * first offered.
 */
export function pickTuned<T>(timed: readonly { choice: T; ms: number; wgsl: number }[], nearTie: number): T | undefined {
  if (timed.length === 0) return undefined;
  const fastest = timed.reduce((best, t) => (t.ms < best.ms ? t : best));
  const margin = (t: (typeof timed)[number]) =>
    t.wgsl === fastest.wgsl ? nearTie : t.wgsl < fastest.wgsl ? nearTie * Math.min(1, fastest.wgsl / t.wgsl - 1) : 0;
  const near = timed.filter((t) => t.ms <= fastest.ms * (1 + margin(t)));
  return near.reduce((best, t) => (t.wgsl < best.wgsl ? t : best)).choice;
}

const sameKernels = (a: string | null, b: string | null) => a !== null && a === b;

/** A call with a tuned choice, weighed by its time in the run (ms per run times its count). */
interface Sibling {
  o: Observed;
  choice: Choice;
  weight: number;
}

const sameChoice = (a: Choice, b: Choice) =>
  a.variant === b.variant && JSON.stringify(a.config ?? null) === JSON.stringify(b.config ?? null);

export class Tuner implements TuningHook {
  private collecting: Observed[] | null = null;
  /**
   * The last collect's calls that had a tuned choice already (with the caller's buffers: only ever recorded dry),
   * `weight` their cached ms times their count: they count in the shares, and small calls may take their choice.
   */
  private known: Sibling[] = [];
  private forcing = false;
  private weight = 1;
  /** Keys looked up this session: the validated choice, or null (none, or no longer offered). */
  private readonly resolved = new Map<string, Choice | null>();
  private readonly warned = new Set<string>();

  constructor(
    readonly gpu: Gpu,
    readonly store: TuningStore,
    private readonly warn: (line: string) => void = (l) => console.warn(l),
  ) {}

  /** The tuned choice for an op call, if one is cached and this registry still offers it. */
  choice(op: AnyOpLike, sizes: object): Choice | undefined {
    const key = tuningKey(op, sizes);
    let c = this.resolved.get(key);
    if (c === undefined) {
      const entry = this.store.get(key);
      c = entry ? this.validEntry(op as AnyOp, sizes, key, entry) : null;
      this.resolved.set(key, c);
    }
    return c ?? undefined;
  }

  private validEntry(op: AnyOp, sizes: object, key: string, entry: TunedEntry): Choice | null {
    const offered = op.choices(this.gpu, sizes);
    const match = offered.find((c) => sameChoice(c, entry));
    // A choice made among other candidates than the registry offers now (a tile added or withdrawn) is re-tuned.
    const why = !match
      ? `tuned choice ${choiceLabel(entry)} for ${key} is not offered any more; using the heuristics until it is re-tuned`
      : entry.candidates !== offered.length
        ? `tuned choice ${choiceLabel(entry)} for ${key} was made among ${entry.candidates} candidates and ${offered.length} are offered now; it is re-tuned`
        : null;
    if (why) {
      if (!this.warned.has(key)) {
        this.warned.add(key);
        this.warn(`webgpu-nn: ${why}`);
      }
      return null;
    }
    return match!;
  }

  /** Whether an op call needs tuning: not forced, not tuned yet (or re-tuning everything), and more than one way to run it here. */
  needs(op: AnyOp, sizes: object): boolean {
    if ((sizes as { variant?: string }).variant !== undefined) return false;
    if (!this.forcing && this.choice(op, sizes)) return false;
    return op.choices(this.gpu, sizes).length > 1;
  }

  /** Called by Op.run while collecting: copies the call's buffers (on the GPU, in queue order) for later timing. */
  observe(op: AnyOpLike, sizes: object, buffers: unknown): void {
    if (!this.collecting) return;
    const key = tuningKey(op, sizes);
    const seen = this.collecting.find((o) => o.key === key);
    if (seen) seen.weight += this.weight;
    if (seen) return;
    if (!this.needs(op as AnyOp, sizes)) {
      const entry = (sizes as { variant?: string }).variant === undefined ? this.store.get(key) : undefined;
      const choice = entry && this.choice(op, sizes);
      if (entry && choice) {
        const same = this.known.find((k) => k.o.key === key);
        if (same) same.weight += entry.ms * this.weight;
        else
          this.known.push({
            o: { key, op: op as AnyOp, sizes: { ...sizes }, buffers, copies: [], weight: 1 },
            choice,
            weight: entry.ms * this.weight,
          });
      }
      return;
    }
    const copies = new Map<GPUBuffer, GPUBuffer>();
    const copy = (b: GPUBuffer) => {
      let c = copies.get(b);
      if (!c) {
        c = this.gpu.pool.acquire(b.size, `tuning copy of ${b.label}`);
        this.gpu.copy(b, 0, c, 0, b.size);
        copies.set(b, c);
      }
      return c;
    };
    const copied = mapBuffers(buffers, copy);
    const exact = (op as AnyOp).exactBuffers(buffers);
    this.collecting.push({
      key,
      op: op as AnyOp,
      sizes: { ...sizes },
      buffers: copied,
      copies: [...copies].map(([orig, c]) => ({ buffer: c, bytes: orig.size, exact: exact.includes(orig) })),
      weight: this.weight,
    });
  }

  /**
   * Runs `record` (which records one step) while watching its op calls; returns the calls that need tuning
   * (with `retune`, every call with more than one candidate, tuned or not). A list of parts, each with the
   * number of times the run repeats it (a training step: steps per epoch), weighs their calls accordingly.
   */
  async collect(record: (() => void) | { weight: number; record: () => void }[], opts: { retune?: boolean } = {}): Promise<Observed[]> {
    const parts = typeof record === 'function' ? [{ weight: 1, record }] : record;
    const got: Observed[] = [];
    this.collecting = got;
    this.known = [];
    this.forcing = !!opts.retune;
    const attached = this.gpu.tuning;
    this.gpu.tuning = this; // op.run reports its calls to the Gpu's tuner
    try {
      for (const part of parts) {
        this.weight = part.weight;
        part.record();
      }
      await this.gpu.sync();
    } catch (e) {
      this.release(got);
      throw e;
    } finally {
      this.gpu.tuning = attached;
      this.collecting = null;
      this.forcing = false;
      this.weight = 1;
    }
    return got;
  }

  /** Releases the GPU copies of observed calls. */
  release(observed: readonly Observed[]): void {
    for (const o of observed) for (const c of o.copies) this.gpu.pool.release(c.buffer);
  }

  /**
   * Times every candidate of each observed call that matters (see minShare), keeps the fastest valid one in
   * the store, and saves it.
   */
  async tune(observed: readonly Observed[], opts: TuneOptions = {}): Promise<TuneReport[]> {
    // The heuristics' time for each call decides which calls are worth tuning (one at a time: the GPU timer is shared).
    const base: number[] = [];
    for (const o of observed) base.push(await this.withWork(o, async (run) => this.best(run(this.heuristic(o)), 2)));
    // The shares are of the whole run: the calls the last collect found tuned already count with their cached times
    // (else, once a run's main batch size is tuned, its last batch's calls would each seem to matter).
    const total = base.reduce((a, b, i) => a + b * observed[i].weight, 0) + this.known.reduce((a, k) => a + k.weight, 0);
    const minShare = opts.minShare ?? 0.02;
    const matters = (i: number) => base[i] * observed[i].weight >= minShare * total;
    const reports: TuneReport[] = new Array(observed.length);
    const worth = observed.filter((_, i) => matters(i));
    let n = 0;
    const record = (i: number, report: TuneReport) => {
      this.store.set(observed[i].key, report.entry);
      this.resolved.set(observed[i].key, { variant: report.entry.variant, config: report.entry.config });
      reports[i] = report;
    };
    // Every candidate of the calls that matter compiled before any is timed (see the top of this file).
    await precompile(this.gpu, () => {
      for (const o of worth) {
        for (const c of o.op.choices(this.gpu, o.sizes)) {
          try {
            o.op.runChoice(this.gpu, o.buffers, o.sizes, c);
          } catch (e) {
            if (fatal(e)) throw e; // one that cannot be recorded is reported by tuneOne
          }
        }
      }
    });
    // The calls that matter first: the others may then take one of their choices (below). A call timed while the
    // host was slow is timed again after the others, within as much time again as the first pass took.
    const tuned: Sibling[] = [...this.known];
    const own = opts.probe === undefined ? await this.hostProbe() : null;
    const probe = opts.probe === undefined ? own : opts.probe;
    try {
      // The steady rate: the highest of the loop's medians, over a few samples first, then over each try's rounds.
      const first: number[] = [];
      for (let k = 0; k < 3 && probe; k++) first.push(await probe.sample());
      let steadyRate = probe ? median(first) : 0;
      // per call, its steadiest try so far (the try kept) and how many it took
      const steadiest = new Map<number, { report: TuneReport; rate: number; tries: number; failed?: true }>();
      let pending = observed.map((_, i) => i).filter(matters);
      let budget = Infinity;
      for (let t = 1; t <= TRIES && pending.length > 0; t++) {
        const start = performance.now();
        for (const i of pending) {
          if (performance.now() - start > budget) break;
          const o = observed[i];
          const heuristic = this.heuristic(o);
          opts.log?.(t === 1 ? `tuning ${++n}/${worth.length}: ${o.key}` : `tuning again (try ${t}; the host was slow): ${o.key}`);
          const before = steadiest.get(i);
          try {
            const { report, rate } = await this.tuneOne(o, heuristic, opts, probe);
            if (probe) steadyRate = Math.max(steadyRate, rate);
            if (!before || rate > before.rate) steadiest.set(i, { report, rate, tries: t });
            else before.tries = t;
          } catch (e) {
            // A candidate that cannot even be recorded (a bug, or a limit this adapter has) must not stop the run.
            if (fatal(e)) throw e;
            this.warn(`webgpu-nn: tuning ${o.key} failed (${(e as Error).message}); keeping the heuristics' choice`);
            steadiest.set(i, { report: this.kept(o, heuristic, base[i]), rate: Infinity, tries: t, failed: true });
          }
        }
        if (t === 1) budget = performance.now() - start;
        else budget -= performance.now() - start;
        pending = probe ? pending.filter((i) => unsteady(steadiest.get(i)!, steadyRate)) : [];
      }
      const slow: string[] = [];
      for (const [i, t] of steadiest) {
        if (!t.failed) tuned.push({ o: observed[i], choice: t.report.entry, weight: base[i] * observed[i].weight });
        if (probe && !t.failed) {
          t.report.host = { steady: t.rate / steadyRate, tries: t.tries };
          if (unsteady(t, steadyRate)) slow.push(`${observed[i].key} (${Math.round(100 * t.report.host.steady)}%)`);
        }
        record(i, t.report);
      }
      if (slow.length)
        this.warn(
          `webgpu-nn: the host was slow while ${slow.length === 1 ? 'a call was' : `${slow.length} calls were`} tuned (the FMA loop under ` +
            `${100 * STEADY}% of its steady rate, after retries), so ${slow.length === 1 ? 'its choice' : 'their choices'} may be off; ` +
            `run \`webgpu-nn tune --retune\` when the machine is quieter: ${slow.join(', ')}`,
        );
    } finally {
      own?.dispose();
    }
    // A call too small to tune takes the choice of the heaviest tuned call (now or before) of the same op that runs the same
    // kernels with it (the same tile at another batch size), where the heuristics' choice would be one more
    // kernel to compile; checked as a candidate is. Else the heuristics' choice.
    tuned.sort((a, b) => b.weight - a.weight);
    for (const [i, o] of observed.entries()) {
      if (matters(i)) continue;
      const heuristic = this.heuristic(o);
      const offered = o.op.choices(this.gpu, o.sizes);
      const choice = tuned
        .filter((t) => t.o.op === o.op)
        .map((t) => ({ t, c: offered.find((c) => sameChoice(c, t.choice)) }))
        .find(({ t, c }) => c && sameKernels(this.kernelsOf(t.o, t.choice), this.kernelsOf(o, c)))?.c;
      let report = this.kept(o, heuristic, base[i]);
      if (choice && !sameChoice(choice, heuristic)) {
        const shared = await this.checkedTime(o, choice);
        if (shared !== null) report = this.kept(o, choice, shared, { ...heuristic, ms: base[i] });
      }
      record(i, report);
    }
    this.store.save();
    return reports;
  }

  /** The FMA loop at half the peak's size (probe.ts), or null with a warning where its output is wrong. */
  private async hostProbe(): Promise<HostProbe | null> {
    const peak = peakLoopSize(this.gpu);
    try {
      return await HostProbe.create(this.gpu, { invocations: peak.invocations, iters: peak.iters / 2 });
    } catch (e) {
      if (fatal(e)) throw e;
      this.warn(`webgpu-nn: tuning without a steadiness probe: ${(e as Error).message}`);
      return null;
    }
  }

  /** The report of a call that is not tuned: it keeps `choice` (the heuristics' unless given), timed at `ms`. */
  private kept(o: Observed, choice: Choice, ms: number, heuristic: Choice & { ms: number } = { ...choice, ms }): TuneReport {
    const candidates = o.op.choices(this.gpu, o.sizes).length;
    const entry: TunedEntry = { ...choice, ms, heuristic, candidates, kept: true };
    return { key: o.key, op: o.op.name, entry, invalid: [], times: [{ choice, ms }] };
  }

  /** The WGSL of the kernels `choice` dispatches for this call (recorded dry: nothing runs), or null if it cannot be recorded. */
  private kernelsOf(o: Observed, choice: Choice): string | null {
    try {
      return this.gpu
        .dryRun(() => o.op.runChoice(this.gpu, o.buffers, o.sizes, choice))
        .map((d) => d.kernel.wgsl)
        .join('\0');
    } catch (e) {
      if (fatal(e)) throw e;
      return null;
    }
  }

  /** `choice`'s time on this call (best of 2), or null if it cannot be recorded or differs from the fallback's result. */
  private async checkedTime(o: Observed, choice: Choice): Promise<number | null> {
    const choices = o.op.choices(this.gpu, o.sizes);
    return this.withWork(o, async (run, restore, outputs) => {
      restore();
      run(choices[0])();
      const reference = await outputs();
      restore();
      try {
        run(choice)();
      } catch (e) {
        if (fatal(e)) throw e;
        return null;
      }
      if (
        mismatch(
          reference,
          await outputs(),
          o.copies.map((k) => k.exact),
        )
      )
        return null;
      return this.best(run(choice), 2);
    });
  }

  /** The choice the heuristics make for an observed call (its variant's default configuration). */
  private heuristic(o: Observed): Choice {
    const variant = o.op.preferred(this.gpu, o.sizes);
    return o.op.choices(this.gpu, o.sizes).find((c) => c.variant === variant) ?? { variant };
  }

  /** Runs f with work buffers holding a fresh copy of the observed state (run(choice) records the call on them). */
  private async withWork<T>(
    o: Observed,
    f: (run: (c: Choice) => () => void, restore: () => void, outputs: () => Promise<Uint32Array[]>) => Promise<T>,
  ): Promise<T> {
    const { gpu } = this;
    const work = new Map<GPUBuffer, GPUBuffer>();
    for (const c of o.copies) work.set(c.buffer, gpu.pool.acquire(c.bytes, `tuning work (${o.op.name})`));
    const workBuffers = mapBuffers(o.buffers, (b) => work.get(b)!);
    const restore = () => {
      for (const c of o.copies) gpu.copy(c.buffer, 0, work.get(c.buffer)!, 0, c.bytes);
    };
    const outputs = async () => Promise.all(o.copies.map(async (c) => new Uint32Array(await gpu.read(work.get(c.buffer)!, c.bytes))));
    try {
      restore();
      return await f((c) => () => o.op.runChoice(gpu, workBuffers, o.sizes, c), restore, outputs);
    } finally {
      for (const b of work.values()) gpu.pool.release(b);
    }
  }

  /** Runs `record` and returns the length of the WGSL of the kernels it dispatched (a proxy for their compile time). */
  private wgslLength(record: () => void): number {
    const { gpu } = this;
    let length = 0;
    // An own property shadows the prototype's dispatch for this one recording; deleting it restores it.
    const own = gpu as unknown as { dispatch: Gpu['dispatch'] };
    own.dispatch = (d) => {
      length += d.kernel.wgsl.length;
      Object.getPrototypeOf(gpu).dispatch.call(gpu, d);
    };
    try {
      record();
    } finally {
      delete (own as { dispatch?: unknown }).dispatch;
    }
    return length;
  }

  /** The best of `samples` timed samples of `record` (after a warm-up run), in ms per run. */
  private async best(record: () => void, samples: number, minSampleMs = 3): Promise<number> {
    await timeOnce(this.gpu, record);
    const repeat = await repeatsFor(this.gpu, record, minSampleMs);
    let best = Infinity;
    for (let i = 0; i < samples; i++) best = Math.min(best, (await sample(this.gpu, record, repeat)).ms);
    return best;
  }

  /** Times every candidate of one call (see the top of this file); `rate`: the probe's median between its rounds. */
  private async tuneOne(
    o: Observed,
    heuristic: Choice,
    opts: TuneOptions,
    probe: SteadinessProbe | null,
  ): Promise<{ report: TuneReport; rate: number }> {
    const { gpu } = this;
    const rates: number[] = [];
    const choices = o.op.choices(gpu, o.sizes);
    const invalid: { choice: Choice; why: string }[] = [];
    const times = new Map<Choice, number[]>();
    const wgsl = new Map<Choice, number>();
    await this.withWork(o, async (run, restore, outputs) => {
      restore();
      run(choices[0])();
      const reference = await outputs();
      for (const c of choices) {
        restore();
        try {
          wgsl.set(c, this.wgslLength(run(c))); // also compiles it (llvmpipe: up to seconds), so this run is not timed
        } catch (e) {
          if (fatal(e) || c === choices[0]) throw e;
          invalid.push({ choice: c, why: `could not be recorded: ${(e as Error).message}` });
          continue;
        }
        const why =
          c === choices[0]
            ? null
            : mismatch(
                reference,
                await outputs(),
                o.copies.map((k) => k.exact),
              );
        if (why) invalid.push({ choice: c, why });
        else times.set(c, []);
      }
      // Round 1: one sample each (sized so short kernels repeat), then drop what cannot win.
      const repeats = new Map<Choice, number>();
      for (const c of times.keys()) {
        await timeOnce(gpu, run(c));
        const r = await repeatsFor(gpu, run(c), opts.minSampleMs ?? 3);
        repeats.set(c, r);
        times.get(c)!.push((await sample(gpu, run(c), r)).ms);
      }
      if (probe) rates.push(await probe.sample());
      const best1 = Math.min(...[...times.values()].map((t) => t[0]));
      const alive = [...times.keys()].filter((c) => times.get(c)![0] <= (opts.dropOver ?? DROP_OVER) * best1 || sameChoice(c, heuristic));
      const rounds = async (cs: Choice[], n: number) => {
        for (let round = 0; round < n; round++) {
          for (const c of cs) times.get(c)!.push((await sample(gpu, run(c), repeats.get(c)!)).ms);
          if (probe) rates.push(await probe.sample());
        }
      };
      const samples = opts.samples ?? 7;
      await rounds(alive, samples - 1);
      // A close call: the candidates near the fastest take as many rounds again.
      const fastest = Math.min(...alive.map((c) => median(times.get(c)!)));
      const close = alive.filter((c) => median(times.get(c)!) <= fastest * (1 + (opts.closeCall ?? CLOSE_CALL)));
      if (close.length > 1) await rounds(close, samples);
    });
    const medianOf = (c: Choice) => (times.has(c) ? median(times.get(c)!) : null);
    const timed = [...times.keys()].map((c) => ({ choice: c, ms: medianOf(c)!, wgsl: wgsl.get(c)! }));
    const best = pickTuned(timed, opts.nearTie ?? NEAR_TIE) ?? choices[0];
    const heuristicTimed = choices.find((c) => sameChoice(c, heuristic));
    const report: TuneReport = {
      key: o.key,
      op: o.op.name,
      entry: {
        variant: best.variant,
        ...(best.config ? { config: best.config as TuneConfig } : {}),
        ms: medianOf(best) ?? Number.NaN,
        heuristic: { ...heuristic, ms: heuristicTimed ? medianOf(heuristicTimed) : null },
        candidates: choices.length,
      },
      invalid,
      times: choices.map((c) => ({ choice: c, ms: medianOf(c), samples: times.get(c)?.length ?? 0 })),
    };
    return { report, rate: rates.length ? median(rates) : Number.POSITIVE_INFINITY };
  }
}

/** The op's buffers object with every GPUBuffer in it (at any depth of objects and arrays) replaced by f(buffer). */
function mapBuffers(value: unknown, f: (b: GPUBuffer) => GPUBuffer): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (isGpuBuffer(value)) return f(value);
  if (Array.isArray(value)) return value.map((v) => mapBuffers(v, f));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapBuffers(v, f)]));
}

const isGpuBuffer = (v: object): v is GPUBuffer => 'mapAsync' in v && 'size' in v && 'usage' in v;

/**
 * Why a candidate's buffers differ from the reference's, or null. Values are compared as float32 within
 * 1e-3 relative plus 1e-4 of the buffer's largest magnitude (sums in another order differ in the last bits);
 * two bit patterns both below the smallest normal float (small integers: indices, counts) must match exactly,
 * and so must every word of a buffer marked `exact` (packed codes, which read as floats of any size).
 */
export function mismatch(want: readonly Uint32Array[], got: readonly Uint32Array[], exact: readonly boolean[] = []): string | null {
  for (const [b, w] of want.entries()) {
    const g = got[b];
    if (exact[b]) {
      const first = w.findIndex((v, i) => v !== g[i]);
      if (first >= 0)
        return `buffer ${b}: ${w.filter((v, i) => v !== g[i]).length} of ${w.length} words differ from the fallback's (first at ${first}: 0x${g[first].toString(16)} instead of 0x${w[first].toString(16)})`;
      continue;
    }
    const wf = new Float32Array(w.buffer, w.byteOffset, w.length);
    const gf = new Float32Array(g.buffer, g.byteOffset, g.length);
    let scale = 0;
    for (const v of wf) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    let bad = 0;
    let first = -1;
    for (let i = 0; i < w.length; i++) {
      if (w[i] === g[i] || (Number.isNaN(wf[i]) && Number.isNaN(gf[i]))) continue;
      const integers = (w[i] & 0x7f800000) === 0 && (g[i] & 0x7f800000) === 0;
      const ok = !integers && Math.abs(wf[i] - gf[i]) <= 1e-3 * Math.abs(wf[i]) + 1e-4 * scale;
      if (!ok) {
        bad++;
        if (first < 0) first = i;
      }
    }
    if (bad)
      return `buffer ${b}: ${bad} of ${w.length} values differ from the fallback's (first at ${first}: ${gf[first]} instead of ${wf[first]})`;
  }
  return null;
}

/** Choices kept in memory only (tests; programs that tune per process). */
export class MemoryTuningStore implements TuningStore {
  readonly entries = new Map<string, TunedEntry>();
  get(key: string): TunedEntry | undefined {
    return this.entries.get(key);
  }
  set(key: string, entry: TunedEntry): void {
    this.entries.set(key, entry);
  }
  save(): void {}
}
