// The tuner: it picks a valid choice that op.run then uses, it never picks a candidate that fails
// validation, it never writes to the caller's buffers, its cache round-trips, and a corrupt, stale or
// foreign cache is ignored with a warning. (That every choice it may make is correct against the float64
// references is in the kernel tests: test/kernels/*, `runnableChoices`.)
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VariantError } from '../../src/errors.js';
import { declareKernel, launch } from '../../src/gpu/kernel.js';
import { MATMUL } from '../../src/shaders/matmul/index.js';
import { defineOp } from '../../src/shaders/op.js';
import { grid1d } from '../../src/shaders/wgsl.js';
import {
  type AdapterIdentity,
  adapterIdentity,
  attachTuning,
  CACHE_FORMAT,
  CACHE_VERSION,
  cacheFileFor,
  engineFingerprint,
  TuningFile,
} from '../../src/tune/cache.js';
import { MemoryTuningStore, mismatch, pickTuned, type TunedEntry, Tuner, tuningKey } from '../../src/tune/tuner.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();
const COMPILE_HEAVY = { timeout: 600_000 };

afterEach(() => {
  ctx.gpu.tuning = null;
});

const tmp = () => mkdtempSync(join(tmpdir(), 'webgpu-nn-tune-test-'));

describe('tuning keys', () => {
  it('name the op and the sizes, sorted, without the fields that force a choice', () => {
    const op = { name: 'matmul' };
    expect(tuningKey(op, { N: 2, M: 1, K: 3, transB: true })).toBe('matmul K=3 M=1 N=2 transB=true');
    expect(tuningKey(op, { M: 1, N: 2, K: 3, transB: true, variant: 'v2', subgroupTile: { tm: 2, tn: 8 } })).toBe(
      'matmul K=3 M=1 N=2 transB=true',
    );
  });
});

describe('the choice tuning keeps (pickTuned)', () => {
  const timed = (choice: string, ms: number, wgsl: number) => ({ choice, ms, wgsl });
  it('the fastest, when no other is within the near-tie margin', () => {
    expect(pickTuned([timed('heuristic', 1.2, 100), timed('other', 1.0, 100)], 0.05)).toBe('other');
  });
  it('a near tie goes to the least WGSL, within the whole margin where the fastest has twice its WGSL or more', () => {
    expect(pickTuned([timed('heuristic', 1.03, 100), timed('fast', 1.0, 200), timed('small', 1.04, 90)], 0.05)).toBe('small');
    expect(pickTuned([timed('heuristic', 1.03, 100), timed('fast', 1.0, 200), timed('small', 1.06, 90)], 0.05)).toBe('heuristic');
  });
  it('a kernel a little shorter than the fastest wins only within a margin as much smaller', () => {
    // the fastest 8% longer: a margin of 0.4%
    expect(pickTuned([timed('short', 1.03, 100), timed('fast', 1.0, 108)], 0.05)).toBe('fast');
    expect(pickTuned([timed('short', 1.003, 100), timed('fast', 1.0, 108)], 0.05)).toBe('short');
    // the fastest half again as long: 2.5%
    expect(pickTuned([timed('short', 1.03, 100), timed('fast', 1.0, 150)], 0.05)).toBe('fast');
    expect(pickTuned([timed('short', 1.02, 100), timed('fast', 1.0, 150)], 0.05)).toBe('short');
  });
  it('a longer kernel than the fastest never wins', () => {
    expect(pickTuned([timed('long', 1.001, 300), timed('fast', 1.0, 100)], 0.05)).toBe('fast');
  });
  it('a near tie between kernels of one size goes to the first offered, not to the faster', () => {
    expect(pickTuned([timed('heuristic', 1.03, 100), timed('other', 1.0, 100)], 0.05)).toBe('heuristic');
    expect(pickTuned([timed('other', 1.0, 100), timed('heuristic', 1.03, 100)], 0.05)).toBe('other');
  });
  it('with no margin the fastest always wins, and nothing timed picks nothing', () => {
    expect(pickTuned([timed('heuristic', 1.03, 90), timed('other', 1.0, 100)], 0)).toBe('other');
    expect(pickTuned([], 0.05)).toBeUndefined();
  });
});

describe('validation', () => {
  it('accepts float differences from summation order, rejects wrong values and unequal small integers', () => {
    const f = (xs: number[]) => new Uint32Array(Float32Array.from(xs).buffer);
    const u = (xs: number[]) => Uint32Array.from(xs);
    expect(mismatch([f([1, 2, 1000])], [f([1.0000001, 2, 1000.01])])).toBeNull();
    expect(mismatch([f([1, 2, 3])], [f([1, 2.01, 3])])).toMatch(/1 of 3 values differ/);
    expect(mismatch([f([0, 5])], [f([1e-9, 5])])).toBeNull(); // a zero against a tiny float: within tolerance
    expect(mismatch([u([3, 7])], [u([3, 7])])).toBeNull();
    expect(mismatch([u([3, 7])], [u([3, 8])])).toMatch(/first at 1/); // indices as bits: exact
    // packed codes read as floats of any size: within tolerance as floats, told apart where marked exact
    const codes = [u([0xff030201, 0x03020100])];
    const off = [u([0xff030201, 0x03020101])];
    expect(mismatch(codes, off)).toBeNull();
    expect(mismatch(codes, off, [true])).toMatch(
      /buffer 0: 1 of 2 words differ from the fallback's \(first at 1: 0x3020101 instead of 0x3020100\)/,
    );
    expect(mismatch(codes, codes, [true])).toBeNull();
  });
});

/** A kernel y[i] = value (a WGSL expression of x and i = g.x) for i < n. */
const mapKernel = (name: string, value: string) =>
  declareKernel({
    name,
    params: { n: 'u32' },
    buffers: { x: 'read', y: 'read_write' },
    wgsl: `@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.n) { y[g.x] = ${value}; } }`,
  });

/**
 * An elementwise op over x and y with a correct v1 and a v2 that `kernel(true)` makes wrong, which the heuristics
 * prefer; `exact` as an op's spec takes it.
 */
const rightAndWrong = (name: string, kernel: (wrong: boolean) => ReturnType<typeof mapKernel>, wrongly: string, exact?: string[]) =>
  defineOp<{ n: number }, { x: GPUBuffer; y: GPUBuffer }, 'v1' | 'v2'>({
    name,
    variants: {
      v1: {
        summary: 'correct',
        run: (gpu, b, s) => launch(gpu, kernel(false), { params: { n: s.n }, buffers: b, workgroups: grid1d(s.n, 64) }),
      },
      v2: {
        summary: wrongly,
        run: (gpu, b, s) => launch(gpu, kernel(true), { params: { n: s.n }, buffers: b, workgroups: grid1d(s.n, 64) }),
      },
    },
    prefer: () => ['v2'],
    cost: ({ n }) => ({ flops: n, bytes: 8 * n }),
    needs: ({ n }, b) => ({ x: [b.x, n], y: [b.y, n] }),
    ...(exact ? { exact } : {}),
  });

// y[i] = 2·x[i]; variant v2 is wrong at one element, and the heuristics prefer it: the tuner must not choose it.
const twiceKernel = (wrong: boolean) =>
  mapKernel(wrong ? 'test_twice_wrong' : 'test_twice', `2.0 * x[g.x]${wrong ? ' + select(0.0, 1.0, g.x == 7u)' : ''}`);
const TWICE = rightAndWrong('test.twice', twiceKernel, 'wrong at element 7');

// Packed bit patterns (as window codes are): y[i] = a word that reads as a tiny float; v2 is one bit off at element 7,
// well within the float tolerance, and the heuristics prefer it. With y marked exact the tuner must not choose it.
const codesKernel = (wrong: boolean) =>
  mapKernel(wrong ? 'test_codes_wrong' : 'test_codes', `bitcast<f32>(0x03020100u + select(0u, 1u, ${wrong} && g.x == 7u)) + 0.0 * x[g.x]`);
const CODES = rightAndWrong('test.codes', codesKernel, 'one bit off at element 7', ['y']);

type Elementwise = typeof TWICE;

/** Collects a call of `op` over 2^20 elements and one over 64, and tunes them with minShare 0.2: the reports by n. */
async function tuneLargeAndSmall(op: Elementwise, store: MemoryTuningStore, seed: number) {
  const { gpu } = ctx;
  const tuner = new Tuner(gpu, store);
  const x = upload(gpu, randomArray(BIG, seed)),
    y = empty(gpu, BIG);
  const observed = await tuner.collect(() => {
    op.run(gpu, { x, y }, { n: BIG });
    op.run(gpu, { x, y }, { n: 64 });
  });
  const reports = await tuner.tune(observed, { minShare: 0.2, samples: 2 });
  tuner.release(observed);
  for (const b of [x, y]) gpu.pool.release(b);
  const at = (n: number) => reports.find((r) => r.key === `${op.name} n=${n}`);
  return { observed: observed.map((o) => o.key), large: at(BIG), small: at(64)! };
}
const BIG = 1 << 20;

describe('Tuner', () => {
  /** Collects one call of `op` over n elements and tunes it: the tuner, the call's key and its report. */
  async function tuneOneCall(op: Elementwise, n: number, seed: number) {
    const { gpu } = ctx;
    const tuner = new Tuner(gpu, new MemoryTuningStore());
    const x = upload(gpu, randomArray(n, seed)),
      y = empty(gpu, n);
    const observed = await tuner.collect(() => op.run(gpu, { x, y }, { n }));
    const [report] = await tuner.tune(observed, { minShare: 0, samples: 2 });
    tuner.release(observed);
    for (const b of [x, y]) gpu.pool.release(b);
    return { tuner, keys: observed.map((o) => o.key), report };
  }

  it('never chooses a candidate that fails validation', async () => {
    const { gpu } = ctx;
    const n = 1000;
    const { tuner, keys, report } = await tuneOneCall(TWICE, n, 1);
    expect(keys).toEqual(['test.twice n=1000']);
    expect(report.invalid.map((i) => i.choice.variant)).toEqual(['v2']);
    expect(report.invalid[0].why).toMatch(/1 of \d+ values differ from the fallback's \(first at 7/);
    expect(report.entry.variant).toBe('v1');
    expect(report.entry.heuristic.variant).toBe('v2');
    gpu.tuning = tuner;
    expect(TWICE.resolve(gpu, { n })).toBe('v1');
    expect(TWICE.resolve(gpu, { n: 999 })).toBe('v2'); // other sizes: not tuned, the heuristics
  });

  it('compares the buffers an op marks exact bit for bit', async () => {
    const { report } = await tuneOneCall(CODES, 1000, 2);
    expect(report.invalid.map((i) => i.choice.variant)).toEqual(['v2']);
    expect(report.invalid[0].why).toMatch(/1 of \d+ words differ from the fallback's \(first at 7: 0x3020101 instead of 0x3020100\)/);
    expect(report.entry.variant).toBe('v1');
  });

  it('times a close call again: the candidates near the fastest take as many rounds again, not the others', async () => {
    const { gpu } = ctx;
    const twice = TWICE.variant('v1');
    // v1 and v2 the same kernel; v3 it 64 times over, a candidate the first round drops (over 3x the fastest)
    const CLOSE = defineOp<{ n: number }, { x: GPUBuffer; y: GPUBuffer }, 'v1' | 'v2' | 'v3'>({
      name: 'test.close',
      variants: {
        v1: twice,
        v2: twice,
        v3: {
          summary: '64 times over',
          run: (g, b, s) => {
            for (let i = 0; i < 64; i++) twice.run(g, b, s);
          },
        },
      },
      prefer: () => ['v1'],
      cost: ({ n }) => ({ flops: n, bytes: 8 * n }),
      needs: ({ n }, b) => ({ x: [b.x, n], y: [b.y, n] }),
    });
    const tuner = new Tuner(gpu, new MemoryTuningStore());
    const x = upload(gpu, randomArray(BIG, 7)),
      y = empty(gpu, BIG);
    const observed = await tuner.collect(() => CLOSE.run(gpu, { x, y }, { n: BIG }));
    // v1 and v2 are within 10× of each other whatever the host does (a test file running beside this one once timed
    // the same kernel twice as slow in one of them, or three times in a first round): closeCall 10 and dropOver 16
    // keep them close; v3 is dropped after the first round, and would not be close had it not been
    const [report] = await tuner.tune(observed, { minShare: 0, samples: 3, closeCall: 10, dropOver: 16 });
    tuner.release(observed);
    expect(report.times.map((t) => [t.choice.variant, t.samples])).toEqual([
      ['v1', 6],
      ['v2', 6],
      ['v3', 1],
    ]);
    for (const b of [x, y]) gpu.pool.release(b);
  });

  describe('while the host is slow (a steadiness probe)', () => {
    // two correct candidates, one kernel: the probe decides the tries
    const SAME = defineOp<{ n: number }, { x: GPUBuffer; y: GPUBuffer }, 'v1' | 'v2'>({
      name: 'test.same',
      variants: { v1: TWICE.variant('v1'), v2: TWICE.variant('v1') },
      prefer: () => ['v1'],
      cost: ({ n }) => ({ flops: n, bytes: 8 * n }),
      needs: ({ n }, b) => ({ x: [b.x, n], y: [b.y, n] }),
    });
    /** A probe reading `start` for its first 3 samples, then try t's rate (the last for later tries). */
    const scripted = (start: number, perTry: number[]) => {
      let k = 0;
      return {
        tries: 0,
        async sample() {
          return k++ < 3 ? start : perTry[Math.min(this.tries, perTry.length) - 1];
        },
      };
    };
    // the second candidate 64 times over: no slow host reorders these
    const FAR = defineOp<{ n: number }, { x: GPUBuffer; y: GPUBuffer }, 'v1' | 'v2'>({
      name: 'test.far',
      variants: {
        v1: TWICE.variant('v1'),
        v2: {
          summary: '64 times over',
          run: (g, b, s) => {
            for (let i = 0; i < 64; i++) TWICE.variant('v1').run(g, b, s);
          },
        },
      },
      prefer: () => ['v1'],
      cost: ({ n }) => ({ flops: n, bytes: 8 * n }),
      needs: ({ n }, b) => ({ x: [b.x, n], y: [b.y, n] }),
    });
    async function tuneSame(probe: ReturnType<typeof scripted> | null, op = SAME) {
      const { gpu } = ctx;
      const warnings: string[] = [];
      const tuner = new Tuner(gpu, new MemoryTuningStore(), (l) => warnings.push(l));
      const x = upload(gpu, randomArray(BIG, 8)),
        y = empty(gpu, BIG);
      const observed = await tuner.collect(() => op.run(gpu, { x, y }, { n: BIG }));
      // samples 3 and a close call whatever the host does; after the first round SAME's two candidates, one kernel,
      // are never dropped and FAR's second, 64 times over, always is: a try takes 1 + 2 rounds and 3 more; the log
      // starts each try
      const log = () => probe && probe.tries++;
      const [report] = await tuner.tune(observed, { minShare: 0, samples: 3, closeCall: 1000, dropOver: 16, probe, log });
      tuner.release(observed);
      for (const b of [x, y]) gpu.pool.release(b);
      return { report, warnings };
    }

    // The probes below slow the host 4× or more: a slow try is timed again only where the runner-up is within as much
    // of the fastest, and the two candidates, one kernel, must stay within it whatever the real host does.
    it('times a call again while the probe read under 90% of its fastest, and keeps the steadier try', async () => {
      const { report, warnings } = await tuneSame(scripted(100, [25, 100]));
      expect(report.host).toEqual({ steady: 1, tries: 2 });
      expect(report.times.map((t) => t.samples)).toEqual([6, 6]); // the kept try's samples only
      expect(warnings).toEqual([]);
    });

    it('warns where every try found the host slow, and keeps the choice of the steadiest', async () => {
      const { report, warnings } = await tuneSame(scripted(100, [20, 25]));
      expect(report.host!.tries).toBeGreaterThanOrEqual(2); // the third only within the first try's time again
      expect(report.host!.steady).toBe(0.25);
      expect(['v1', 'v2']).toContain(report.entry.variant);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/the host was slow while a call was tuned .*webgpu-nn tune --retune.*test\.same n=1048576 \(25%\)/);
    });

    it('keeps a choice no slow host could have reordered: one try, no warning', async () => {
      const { report, warnings } = await tuneSame(scripted(100, [50, 100]), FAR);
      expect(report.entry.variant).toBe('v1');
      expect(report.host).toEqual({ steady: 0.5, tries: 1 });
      expect(warnings).toEqual([]);
    });

    it('one try and no host report without a probe; a steady probe takes one try', async () => {
      const none = await tuneSame(null);
      expect(none.report.host).toBeUndefined();
      const steady = await tuneSame(scripted(100, [92]));
      expect(steady.report.host).toEqual({ steady: 0.92, tries: 1 });
    });
  });

  it('reports a candidate that cannot be recorded as invalid, and tunes the rest', async () => {
    const { gpu } = ctx;
    const THROWS = defineOp<{ n: number }, { x: GPUBuffer; y: GPUBuffer }, 'v1' | 'v2' | 'v3'>({
      name: 'test.throws',
      variants: {
        v1: TWICE.variant('v1'),
        v2: {
          summary: 'refuses these sizes only when it runs',
          run: () => {
            throw new VariantError('test.throws v2: not today');
          },
        },
        v3: TWICE.variant('v1'),
      },
      prefer: () => ['v1'],
      cost: ({ n }) => ({ flops: n, bytes: 8 * n }),
      needs: ({ n }, b) => ({ x: [b.x, n], y: [b.y, n] }),
    });
    const tuner = new Tuner(gpu, new MemoryTuningStore());
    const x = upload(gpu, randomArray(256, 6)),
      y = empty(gpu, 256);
    const observed = await tuner.collect(() => THROWS.run(gpu, { x, y }, { n: 256, variant: 'v1' as never }));
    expect(observed).toEqual([]); // a forced call is never tuned
    const o2 = await tuner.collect(() => TWICE.run(gpu, { x, y }, { n: 256 }));
    o2[0].op = THROWS as never; // the same call, replayed through the op whose v2 throws
    const [report] = await tuner.tune(o2, { minShare: 0, samples: 2 });
    tuner.release(o2);
    expect(report.invalid).toEqual([{ choice: { variant: 'v2' }, why: 'could not be recorded: test.throws v2: not today' }]);
    expect(['v1', 'v3']).toContain(report.entry.variant);
    for (const b of [x, y]) gpu.pool.release(b);
  });

  it(
    'picks one of the choices the registry offers, op.run uses it, and the result is right; the caller’s buffers are untouched',
    COMPILE_HEAVY,
    async () => {
      const { gpu } = ctx;
      const store = new MemoryTuningStore();
      const tuner = new Tuner(gpu, store);
      const [M, K, N] = [24, 36, 20];
      const a = randomArray(M * K, 2),
        b = randomArray(N * K, 3),
        c0 = randomArray(M * N, 4);
      const ab = upload(gpu, a),
        bb = upload(gpu, b),
        cb = upload(gpu, c0);
      const sizes = { M, N, K, transB: true, accumulate: true };
      const observed = await tuner.collect(() => MATMUL.run(gpu, { a: ab, b: bb, c: cb, bias: null }, sizes));
      // The planning step itself ran: C += A·Bᵀ once.
      const once = await download(gpu, cb, M * N);
      // nearTie 0: the fastest wins outright (by default a near tie may go to a shorter kernel), as asserted below.
      const [report] = await tuner.tune(observed, { minShare: 0, samples: 2, nearTie: 0 });
      tuner.release(observed);
      // Tuning replays the call on copies only: C still holds the planning step's result.
      expect(await download(gpu, cb, M * N)).toEqual(once);
      const offered = MATMUL.choices(gpu, sizes).map((c) => JSON.stringify(c));
      expect(offered.length).toBeGreaterThan(1);
      expect(offered).toContain(
        JSON.stringify({ variant: report.entry.variant, ...(report.entry.config ? { config: report.entry.config } : {}) }),
      );
      expect(report.invalid).toEqual([]);
      expect(report.times.filter((t) => t.ms !== null).length).toBeGreaterThan(1);
      expect(report.entry.ms).toBeLessThanOrEqual(Math.min(...report.times.flatMap((t) => (t.ms === null ? [] : [t.ms]))));
      expect(store.entries.get(report.key)).toBe(report.entry);
      gpu.tuning = tuner;
      expect(MATMUL.choose(gpu, sizes)).toEqual({
        variant: report.entry.variant,
        ...(report.entry.config ? { config: report.entry.config } : {}),
      });
      gpu.write(cb, Float32Array.from(c0));
      MATMUL.run(gpu, { a: ab, b: bb, c: cb, bias: null }, sizes);
      const bt = new Float64Array(K * N);
      for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) bt[k * N + j] = b[j * K + k];
      const want = ref.matmul(Float64Array.from(Float32Array.from(a)), Float64Array.from(Float32Array.from(bt)), M, K, N);
      expectClose(
        await download(gpu, cb, M * N),
        want.map((v, i) => v + Math.fround(c0[i])),
        { label: `tuned ${JSON.stringify(report.entry)}`, atol: 1e-5 * K, rtol: 1e-5 },
      );
      for (const buf of [ab, bb, cb]) gpu.pool.release(buf);
    },
  );

  it("does not tune calls below minShare of the run: they take a tuned call's choice that runs the same kernel, and say so", async () => {
    const { large, small } = await tuneLargeAndSmall(TWICE, new MemoryTuningStore(), 5);
    expect(large!.entry.variant).toBe('v1');
    // not tuned (one time, no candidates compared), but v1 at n = 64 is the kernel the large call chose
    expect(small.entry).toMatchObject({ variant: 'v1', kept: true, heuristic: { variant: 'v2' } });
    expect(small.times).toHaveLength(1);
  });

  it("keeps the heuristics' choice for a small call where the tuned choice would run another kernel", async () => {
    // v1 runs one kernel from 1024 elements on and another below (both correct); v2 is wrong and preferred.
    const sized = (large: boolean) =>
      mapKernel(large ? 'test_sized_large' : 'test_sized_small', large ? '2.0 * x[g.x]' : 'x[g.x] + x[g.x]');
    const SIZED: Elementwise = defineOp<{ n: number }, { x: GPUBuffer; y: GPUBuffer }, 'v1' | 'v2'>({
      name: 'test.sized',
      variants: {
        v1: {
          summary: 'one kernel per size class',
          run: (g, b, s) => launch(g, sized(s.n >= 1024), { params: { n: s.n }, buffers: b, workgroups: grid1d(s.n, 64) }),
        },
        v2: TWICE.variant('v2'),
      },
      prefer: () => ['v2'],
      cost: ({ n }) => ({ flops: n, bytes: 8 * n }),
      needs: ({ n }, b) => ({ x: [b.x, n], y: [b.y, n] }),
    });
    const { large, small } = await tuneLargeAndSmall(SIZED, new MemoryTuningStore(), 7);
    expect(large!.entry.variant).toBe('v1');
    expect(small.entry).toMatchObject({ variant: 'v2', kept: true });
  });

  it('counts the calls tuned before in the shares: a small call beside a cached large one is not tuned', async () => {
    const store = new MemoryTuningStore();
    // the large call as an earlier run's cache has it: v1, 50 ms a run
    store.set(`test.twice n=${BIG}`, { variant: 'v1', ms: 50, heuristic: { variant: 'v2', ms: null }, candidates: 2 });
    const { observed, small } = await tuneLargeAndSmall(TWICE, store, 8);
    expect(observed).toEqual(['test.twice n=64']);
    // alone, the small call would be all of the time observed, and tuned; beside the cached 50 ms it is not
    expect(small.entry).toMatchObject({ variant: 'v1', kept: true });
    expect(small.times).toHaveLength(1);
  });

  it('ignores a cached choice the registry does not offer any more, with a warning', () => {
    const { gpu } = ctx;
    const store = new MemoryTuningStore();
    const sizes = { M: 8, N: 8, K: 8 };
    const entry: TunedEntry = {
      variant: 'v2',
      config: { tm: 3, tn: 5, wgx: 1, wgy: 1 },
      ms: 1,
      heuristic: { variant: 'v4', ms: 2 },
      candidates: 3,
    };
    store.set(tuningKey(MATMUL, sizes), entry);
    const warnings: string[] = [];
    gpu.tuning = new Tuner(gpu, store, (l) => warnings.push(l));
    expect(MATMUL.choose(gpu, sizes)).toEqual({ variant: MATMUL.preferred(gpu, sizes) });
    expect(warnings).toEqual([expect.stringMatching(/tuned choice v2 tm3 tn5 wgx1 wgy1 for matmul K=8 M=8 N=8 is not offered any more/)]);
  });

  it('re-tunes a cached choice made among other candidates than the registry offers now, with a warning', () => {
    const { gpu } = ctx;
    const store = new MemoryTuningStore();
    const sizes = { M: 8, N: 8, K: 8 };
    const offered = MATMUL.choices(gpu, sizes);
    const last = offered[offered.length - 1];
    const entry = (candidates: number): TunedEntry => ({ ...last, ms: 1, heuristic: { ...offered[0], ms: 2 }, candidates });
    const warnings: string[] = [];
    store.set(tuningKey(MATMUL, sizes), entry(offered.length));
    let tuner = new Tuner(gpu, store, (l) => warnings.push(l));
    expect(tuner.choice(MATMUL, sizes)).toEqual(last); // the same candidates: the cached choice holds
    store.set(tuningKey(MATMUL, sizes), entry(offered.length - 1)); // tuned before a tile was added
    tuner = new Tuner(gpu, store, (l) => warnings.push(l));
    expect(tuner.choice(MATMUL, sizes)).toBeUndefined();
    expect(tuner.needs(MATMUL, sizes)).toBe(offered.length > 1);
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(`for matmul K=8 M=8 N=8 was made among ${offered.length - 1} candidates and ${offered.length} are offered now`),
      ),
    ]);
  });
});

describe('tuning cache', () => {
  const entry = (variant: string, ms: number): TunedEntry => ({ variant, ms, heuristic: { variant: 'v1', ms: 2 * ms }, candidates: 2 });

  it('round-trips through its file, one file per adapter identity', () => {
    const id = adapterIdentity(ctx.gpu.adapter);
    if (ctx.gpu.isSoftware) expect(id.host?.cpu).toBeTruthy(); // software adapters are told apart by their CPU
    const dir = tmp();
    const path = cacheFileFor(id, dir);
    expect(cacheFileFor({ ...id, description: `${id.description} (another)` }, dir)).not.toBe(path);
    const a = TuningFile.open(id, { path });
    a.set('op.x n=1', { ...entry('v2', 1.5), config: { OT: 4, PT: 8 } });
    a.set('op.y n=2', entry('v1', 0.25));
    a.save();
    const json = JSON.parse(readFileSync(path, 'utf8'));
    expect(json).toMatchObject({ format: CACHE_FORMAT, version: CACHE_VERSION, engine: engineFingerprint(), adapter: id });
    const warnings: string[] = [];
    const b = TuningFile.open(id, { path, warn: (l) => warnings.push(l) });
    expect(warnings).toEqual([]);
    expect(b.all()).toEqual(a.all());
    expect(b.get('op.x n=1')).toEqual({ ...entry('v2', 1.5), config: { OT: 4, PT: 8 } });
  });

  function expectIgnored(path: string, id: AdapterIdentity, problem: RegExp) {
    const warnings: string[] = [];
    const f = TuningFile.open(id, { path, warn: (l) => warnings.push(l) });
    expect(f.size).toBe(0);
    expect(warnings).toEqual([expect.stringMatching(problem)]);
    // and the next tuning replaces it with a good file
    f.set('op.z n=3', entry('v1', 1));
    f.save();
    expect(TuningFile.open(id, { path, warn: (l) => warnings.push(l) }).get('op.z n=3')).toEqual(entry('v1', 1));
    expect(warnings.length).toBe(1);
  }

  it('ignores a corrupt file with a warning, then replaces it', () => {
    const id = adapterIdentity(ctx.gpu.adapter);
    const dir = tmp();
    writeFileSync(join(dir, 'a.json'), '{"format": "webgpu-nn tuning cache", "version": 1, "entr');
    expectIgnored(join(dir, 'a.json'), id, /ignoring the corrupt tuning cache .*a\.json \(.*JSON.*\); kernels will be re-tuned/);
    const good = { format: CACHE_FORMAT, version: CACHE_VERSION, engine: engineFingerprint(), adapter: id };
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ ...good, entries: { 'op n=1': { variant: 2, ms: 1 } } }));
    expectIgnored(join(dir, 'b.json'), id, /corrupt tuning cache .*entry "op n=1": no variant/);
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ ...good, entries: { 'op n=1': { variant: 'v1', config: { OT: 'x' }, ms: 1 } } }));
    expectIgnored(join(dir, 'c.json'), id, /corrupt tuning cache .*config is not an object of numbers/);
  });

  it("ignores another adapter's file (foreign) and another version's (stale)", () => {
    const id = adapterIdentity(ctx.gpu.adapter);
    const dir = tmp();
    const good = { format: CACHE_FORMAT, version: CACHE_VERSION, engine: engineFingerprint(), entries: { 'op n=1': entry('v2', 1) } };
    writeFileSync(join(dir, 'f.json'), JSON.stringify({ ...good, adapter: { ...id, host: { cpu: 'another CPU', cores: 64 } } }));
    expectIgnored(join(dir, 'f.json'), id, /ignoring the foreign tuning cache .*tuned on another adapter/);
    writeFileSync(join(dir, 's.json'), JSON.stringify({ ...good, adapter: id, engine: '0123456789abcdef' }));
    expectIgnored(join(dir, 's.json'), id, /ignoring the stale tuning cache .*written for other kernels/);
  });

  it('loads a shipped file for its own adapter only; the user’s own entries come first', () => {
    const id = adapterIdentity(ctx.gpu.adapter);
    const dir = tmp();
    const shipped = TuningFile.open(id, { path: join(dir, 'shipped.json') });
    shipped.set('op n=1', entry('v3', 1));
    shipped.set('op n=2', entry('v3', 2));
    shipped.export(join(dir, 'app.json'));
    const own = TuningFile.open(id, { path: join(dir, 'own.json') });
    own.set('op n=1', entry('v2', 0.5));
    expect(own.load(join(dir, 'app.json'))).toBe(true);
    expect(own.get('op n=1')).toEqual(entry('v2', 0.5));
    expect(own.get('op n=2')).toEqual(entry('v3', 2));
    own.save();
    expect(TuningFile.open(id, { path: join(dir, 'own.json') }).get('op n=2')).toBeUndefined(); // never written into the user's file
    const warnings: string[] = [];
    const other = TuningFile.open({ ...id, vendor: 'another vendor' }, { path: join(dir, 'other.json'), warn: (l) => warnings.push(l) });
    expect(other.load(join(dir, 'app.json'))).toBe(false);
    expect(other.get('op n=2')).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/ignoring the foreign tuning cache .*app\.json/)]);
  });

  it('attachTuning: the adapter’s file under XDG_CACHE_HOME; WEBGPU_NN_TUNE=0 keeps the heuristics', () => {
    const { gpu } = ctx;
    const saved = { xdg: process.env.XDG_CACHE_HOME, tune: process.env.WEBGPU_NN_TUNE };
    try {
      process.env.XDG_CACHE_HOME = tmp();
      process.env.WEBGPU_NN_TUNE = '1';
      const tuner = attachTuning(gpu)!;
      expect(gpu.tuning).toBe(tuner);
      expect((tuner.store as TuningFile).path).toBe(
        cacheFileFor(adapterIdentity(gpu.adapter), join(process.env.XDG_CACHE_HOME, 'webgpu-nn')),
      );
      process.env.WEBGPU_NN_TUNE = '0';
      expect(attachTuning(gpu)).toBeNull();
      expect(gpu.tuning).toBeNull();
    } finally {
      for (const [k, v] of [
        ['XDG_CACHE_HOME', saved.xdg],
        ['WEBGPU_NN_TUNE', saved.tune],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
