import { describe, expect, it } from 'vitest';
import { MATMUL, matmul } from '../../src/shaders/matmul/index.js';
import { BIAS_GRAD, biasAdd, biasGrad, linearBackward, linearForward } from '../../src/shaders/matmul/linear.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableChoices, runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

// llvmpipe compiles each kernel at its first dispatch: 1-5 s for the unrolled register tiles, more while
// other work shares the CPU. Mesa's disk cache makes later runs fast, but a fresh machine compiles ~60 kernels.
const COMPILE_HEAVY = { timeout: 600_000 };

// f32 accumulation over K terms of size <= 1: the error grows with K (about sqrt(K)·2^-24 per term in
// practice; this bound leaves room for K·2^-24 and still catches any indexing bug, which errs by O(1)).
const tol = (K: number) => ({ atol: 1e-6 * (K + 1), rtol: 1e-5 });

// [rows, cols] row-major -> [cols, rows]
function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

/** Every variant this adapter can run (v4 needs fixed-size subgroups; forcing it elsewhere must fail). */
const variants = () => runnableVariants(ctx.gpu, MATMUL, { M: 1, N: 1, K: 1 });

// M x K x N: degenerate, awkward, the seed's fc1 (batch 64, 320 -> 50) and fc2 at batch 256, large.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [17, 33, 65],
  [33, 20, 36], // vec4 loads in every layout but tiles that overhang M and N
  [64, 320, 50],
  [256, 50, 10],
  [129, 257, 131],
  [512, 512, 512],
];

describe('matmul', () => {
  for (const [M, K, N] of SHAPES) {
    it(`${M}x${K}x${N}, every transpose and variant`, COMPILE_HEAVY, async () => {
      const { gpu } = ctx;
      const a = randomArray(M * K, M * 1000 + K, -1, 1);
      const b = randomArray(K * N, N * 1000 + K + 1, -1, 1);
      const expected = ref.matmul(a, b, M, K, N);
      const stored = {
        a: [upload(gpu, a), upload(gpu, transpose(a, M, K))],
        b: [upload(gpu, b), upload(gpu, transpose(b, K, N))],
      };
      const c = empty(gpu, M * N);
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const variant of variants()) {
            matmul(gpu, stored.a[+transA], stored.b[+transB], c, { M, N, K, transA, transB, variant });
            const label = `matmul ${M}x${K}x${N} transA=${transA} transB=${transB} ${variant}`;
            expectClose(await download(gpu, c, M * N), expected, { label, ...tol(K) });
          }
        }
      }
      for (const buf of [...stored.a, ...stored.b, c]) gpu.pool.release(buf);
    });
  }

  for (const [M, K, N] of [
    [5, 9, 6],
    [33, 17, 70],
    [64, 320, 50],
  ] as [number, number, number][]) {
    it(`accumulate: C += op(A)·op(B), ${M}x${K}x${N}`, COMPILE_HEAVY, async () => {
      const { gpu } = ctx;
      const a = randomArray(M * K, 11, -1, 1),
        b = randomArray(K * N, 12, -1, 1),
        c0 = randomArray(M * N, 13, -1, 1);
      const ab = ref.matmul(a, b, M, K, N);
      const expected = ab.map((v, i) => v + c0[i]);
      const ab2 = [upload(gpu, a), upload(gpu, transpose(a, M, K))];
      const bb2 = [upload(gpu, b), upload(gpu, transpose(b, K, N))];
      const c = empty(gpu, M * N);
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const variant of variants()) {
            gpu.write(c, Float32Array.from(c0));
            matmul(gpu, ab2[+transA], bb2[+transB], c, { M, N, K, transA, transB, accumulate: true, variant });
            const label = `matmul accumulate ${M}x${K}x${N} transA=${transA} transB=${transB} ${variant}`;
            expectClose(await download(gpu, c, M * N), expected, { label, ...tol(K) });
          }
        }
      }
      for (const buf of [...ab2, ...bb2, c]) gpu.pool.release(buf);
    });
  }

  // Every choice a tuner may make (variants × tiles) in the layouts of the seed's fc1: forward, dx, dw.
  it('64x320x50: every choice a tuner may make, in the layouts of a linear layer', COMPILE_HEAVY, async () => {
    const { gpu } = ctx;
    const [M, K, N] = [64, 320, 50];
    const a = randomArray(M * K, 21, -1, 1);
    const b = randomArray(K * N, 22, -1, 1);
    const expected = ref.matmul(a, b, M, K, N);
    const stored = { a: [upload(gpu, a), upload(gpu, transpose(a, M, K))], b: [upload(gpu, b), upload(gpu, transpose(b, K, N))] };
    const c = empty(gpu, M * N);
    for (const [transA, transB] of [
      [false, true],
      [false, false],
      [true, false],
    ]) {
      const sizes = { M, N, K, transA, transB };
      for (const choice of runnableChoices(gpu, MATMUL, sizes)) {
        const tiles =
          choice.variant === 'v2' ? { registerTile: choice.config } : choice.variant === 'v4' ? { subgroupTile: choice.config } : {};
        matmul(gpu, stored.a[+transA], stored.b[+transB], c, { ...sizes, variant: choice.variant, ...(tiles as object) });
        const label = `matmul transA=${transA} transB=${transB} ${choice.variant} ${JSON.stringify(choice.config ?? {})}`;
        expectClose(await download(gpu, c, M * N), expected, { label, ...tol(K) });
      }
    }
    for (const buf of [...stored.a, ...stored.b, c]) gpu.pool.release(buf);
  });

  it('K = 0 gives zeros (plus C when accumulating)', COMPILE_HEAVY, async () => {
    const { gpu } = ctx;
    const a = upload(gpu, [0]),
      b = upload(gpu, [0]),
      c = upload(gpu, [1, 2, 3, 4, 5, 6]);
    for (const variant of variants()) {
      gpu.write(c, Float32Array.from([1, 2, 3, 4, 5, 6]));
      matmul(gpu, a, b, c, { M: 2, N: 3, K: 0, accumulate: true, variant });
      expectClose(await download(gpu, c, 6), [1, 2, 3, 4, 5, 6], { label: `K=0 accumulate ${variant}`, atol: 0, rtol: 0 });
      matmul(gpu, a, b, c, { M: 2, N: 3, K: 0, variant });
      expectClose(await download(gpu, c, 6), [0, 0, 0, 0, 0, 0], { label: `K=0 ${variant}`, atol: 0, rtol: 0 });
    }
    for (const buf of [a, b, c]) gpu.pool.release(buf);
  });
});

describe('bias', () => {
  for (const [rows, cols] of [
    [1, 1],
    [3, 7],
    [64, 50],
    [256, 10],
    [17, 333],
  ] as [number, number][]) {
    it(`biasAdd and biasGrad, ${rows}x${cols}`, async () => {
      const { gpu } = ctx;
      const x = randomArray(rows * cols, rows + 7 * cols, -1, 1);
      const bias = randomArray(cols, cols, -1, 1);
      const db0 = randomArray(cols, cols + 1, -1, 1);
      const xb = upload(gpu, x),
        bb = upload(gpu, bias),
        yb = empty(gpu, rows * cols),
        dbb = empty(gpu, cols);
      const expectedY = ref.biasAdd(x, bias, rows, cols);
      biasAdd(gpu, xb, bb, yb, { rows, cols });
      expectClose(await download(gpu, yb, rows * cols), expectedY, { label: `biasAdd ${rows}x${cols}`, atol: 1e-6, rtol: 1e-6 });
      biasAdd(gpu, xb, bb, xb, { rows, cols }); // in place
      expectClose(await download(gpu, xb, rows * cols), expectedY, { label: `biasAdd in place ${rows}x${cols}`, atol: 1e-6, rtol: 1e-6 });

      const dyb = upload(gpu, x);
      const expectedDb = ref.biasGrad(x, rows, cols);
      for (const variant of runnableVariants(gpu, BIAS_GRAD, { rows, cols })) {
        biasGrad(gpu, dyb, dbb, { rows, cols, variant });
        expectClose(await download(gpu, dbb, cols), expectedDb, { label: `biasGrad ${rows}x${cols} ${variant}`, ...tol(rows) });
        gpu.write(dbb, Float32Array.from(db0));
        biasGrad(gpu, dyb, dbb, { rows, cols, variant, accumulate: true });
        const acc = expectedDb.map((v, i) => v + db0[i]);
        expectClose(await download(gpu, dbb, cols), acc, { label: `biasGrad accumulate ${rows}x${cols} ${variant}`, ...tol(rows) });
      }
      for (const buf of [xb, bb, yb, dbb, dyb]) gpu.pool.release(buf);
    });
  }
});

describe('linear', () => {
  // [batch, in, out]: the seed's fc1 and fc2 at batch 1, 64 and 256, and an awkward one.
  const LAYERS: [number, number, number][] = [
    [1, 320, 50],
    [64, 320, 50],
    [64, 50, 10],
    [256, 50, 10],
    [3, 17, 33],
  ];
  for (const [batch, inF, outF] of LAYERS) {
    it(`forward and backward, batch ${batch}, ${inF} -> ${outF}, every variant`, COMPILE_HEAVY, async () => {
      const { gpu } = ctx;
      const x = randomArray(batch * inF, batch + inF, -1, 1);
      const w = randomArray(outF * inF, outF + 1, -0.5, 0.5);
      const b = randomArray(outF, outF + 2, -1, 1);
      const dy = randomArray(batch * outF, batch + 3, -1, 1);
      const g0 = { dw: randomArray(outF * inF, 4, -1, 1), db: randomArray(outF, 5, -1, 1), dx: randomArray(batch * inF, 6, -1, 1) };
      const y = ref.linear(x, w, b, batch, inF, outF);
      const yNoBias = ref.linear(x, w, null, batch, inF, outF);
      const g = ref.linearBackward(x, w, dy, batch, inF, outF);
      const xb = upload(gpu, x),
        wb = upload(gpu, w),
        bb = upload(gpu, b),
        dyb = upload(gpu, dy);
      const yb = empty(gpu, batch * outF),
        dxb = empty(gpu, batch * inF),
        dwb = empty(gpu, outF * inF),
        dbb = empty(gpu, outF);
      const sizes = { batch, inFeatures: inF, outFeatures: outF };
      for (const variant of variants()) {
        const tag = `batch ${batch} ${inF}->${outF} ${variant}`;
        linearForward(gpu, xb, wb, bb, yb, { ...sizes, variant });
        expectClose(await download(gpu, yb, batch * outF), y, { label: `linear ${tag}`, ...tol(inF) });
        linearForward(gpu, xb, wb, null, yb, { ...sizes, variant });
        expectClose(await download(gpu, yb, batch * outF), yNoBias, { label: `linear no bias ${tag}`, ...tol(inF) });

        for (const biasGradVariant of BIAS_GRAD.names) {
          linearBackward(gpu, xb, wb, dyb, dxb, dwb, dbb, { ...sizes, variant, biasGradVariant });
          expectClose(await download(gpu, dxb, batch * inF), g.dx, { label: `linear dx ${tag}`, ...tol(outF) });
          expectClose(await download(gpu, dwb, outF * inF), g.dw, { label: `linear dw ${tag}`, ...tol(batch) });
          expectClose(await download(gpu, dbb, outF), g.db, { label: `linear db ${tag} ${biasGradVariant}`, ...tol(batch) });
        }

        // Gradient accumulation: dw += dyᵀ·x, db += Σ dy, dx += dy·w; and each output may be skipped.
        gpu.write(dwb, Float32Array.from(g0.dw));
        gpu.write(dbb, Float32Array.from(g0.db));
        gpu.write(dxb, Float32Array.from(g0.dx));
        linearBackward(gpu, xb, wb, dyb, dxb, dwb, dbb, { ...sizes, variant, accumulate: true, accumulateDx: true });
        expectClose(
          await download(gpu, dwb, outF * inF),
          g.dw.map((v, i) => v + g0.dw[i]),
          { label: `linear dw += ${tag}`, ...tol(batch) },
        );
        expectClose(
          await download(gpu, dbb, outF),
          g.db.map((v, i) => v + g0.db[i]),
          { label: `linear db += ${tag}`, ...tol(batch) },
        );
        expectClose(
          await download(gpu, dxb, batch * inF),
          g.dx.map((v, i) => v + g0.dx[i]),
          { label: `linear dx += ${tag}`, ...tol(outF) },
        );
        gpu.write(dxb, Float32Array.from(g0.dx));
        linearBackward(gpu, xb, wb, dyb, null, dwb, null, { ...sizes, variant });
        expectClose(await download(gpu, dwb, outF * inF), g.dw, { label: `linear dw only ${tag}`, ...tol(batch) });
        expectClose(await download(gpu, dxb, batch * inF), Float32Array.from(g0.dx), {
          label: `linear dx untouched ${tag}`,
          atol: 0,
          rtol: 0,
        });
      }
      for (const buf of [xb, wb, bb, dyb, yb, dxb, dwb, dbb]) gpu.pool.release(buf);
    });
  }

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
