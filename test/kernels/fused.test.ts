// The fused kernels of a training step, each against the float64 references and against the unfused path it
// replaces: dropout folded into batch norm (bit for bit the unfused result), the fused linear ReLU and its
// backward (bit for bit), the linear bias gradient as row sums of the dw product, the cross-entropy gradient
// written by its forward (bit for bit), images and labels gathered together, and conv2d's bias gradient in
// the backward-weight kernels (the one that sums in another order: equal within float32 rounding, measured
// here).
import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/data/dataset.js';
import { GpuDataset } from '../../src/data/gpu-data.js';
import { fixedSubgroupSize } from '../../src/gpu/capabilities.js';
import * as F from '../../src/nn/ops.js';
import { type Tensor, tidy } from '../../src/nn/tensor.js';
import {
  BATCH_NORM_BACKWARD,
  BATCH_NORM_TRAIN,
  type BatchNormDropout,
  batchNormBackward,
  batchNormForwardTrain,
} from '../../src/shaders/batch-norm/index.js';
import { CONV2D_BACKWARD_WEIGHT, conv2dBackwardBias, conv2dBackwardWeight, conv2dOutputSize } from '../../src/shaders/conv2d/index.js';
import { dropout, dropoutBackward } from '../../src/shaders/dropout.js';
import { gatherBatch, gatherImages, gatherLabels } from '../../src/shaders/gather.js';
import { MATMUL, matmulBias } from '../../src/shaders/matmul/index.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, downloadI32, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu({ tensors: true });
const COMPILE_HEAVY = { timeout: 600_000 };
const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));
const bits = (a: Float32Array | Int32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('batch norm with dropout folded in', () => {
  // The seed's first block (vec4 kernels) and an odd shape (scalar kernels).
  for (const [N, C, H, W] of [
    [64, 10, 12, 12],
    [3, 2, 5, 7],
  ] as [number, number, number, number][]) {
    it(`${N}x${C}x${H}x${W}, every variant: forward and backward equal dropout(batchNorm) bit for bit, and the reference`, async () => {
      const { gpu } = ctx;
      const n = N * C * H * W;
      const drop: BatchNormDropout = { p: 0.5, seed: 42, step: 7 };
      const mask = ref.dropoutMask(n, drop.p, drop.seed, drop.step);
      const x = f(randomArray(n, 1, -1.5, 2.5)),
        gamma = f(randomArray(C, 2, 0.5, 1.5)),
        beta = f(randomArray(C, 3, -0.5, 0.5)),
        dy = f(randomArray(n, 4, -1, 1));
      const want = ref.batchNorm2dTrain(x, gamma, beta, { N, C, H, W });
      const wantGrads = ref.batchNorm2dBackward(x, gamma, ref.dropoutBackward(dy, mask, drop.p), want.mean, want.invStd, { N, C, H, W });
      const [xb, gb, bb, dyb] = [x, gamma, beta, dy].map((a) => upload(gpu, a));
      for (const variant of runnableVariants(gpu, BATCH_NORM_TRAIN, { N, C, H, W })) {
        expect(BATCH_NORM_BACKWARD.unavailable(gpu, variant, { N, C, H, W })).toBeNull();
        const label = `${N}x${C}x${H}x${W} ${variant}`;
        const out = () => ({
          y: empty(gpu, n),
          mean: empty(gpu, C),
          inv: empty(gpu, C),
          dx: empty(gpu, n),
          dg: empty(gpu, C),
          db: empty(gpu, C),
        });
        const fused = out();
        const plain = out();
        const tmp = empty(gpu, n);
        const s = { N, C, H, W, variant };
        batchNormForwardTrain(gpu, xb, gb, bb, fused.y, fused.mean, fused.inv, { ...s, dropout: drop });
        batchNormForwardTrain(gpu, xb, gb, bb, tmp, plain.mean, plain.inv, s);
        dropout(gpu, tmp, plain.y, { n, ...drop });
        batchNormBackward(gpu, xb, dyb, gb, fused.mean, fused.inv, fused.dx, fused.dg, fused.db, { ...s, dropout: drop });
        dropoutBackward(gpu, dyb, tmp, { n, ...drop });
        batchNormBackward(gpu, xb, tmp, gb, plain.mean, plain.inv, plain.dx, plain.dg, plain.db, s);
        for (const k of ['y', 'dx', 'dg', 'db'] as const) {
          const len = k === 'y' || k === 'dx' ? n : C;
          expect(bits(await download(gpu, fused[k], len)), `${label} ${k}: fused = unfused`).toEqual(
            bits(await download(gpu, plain[k], len)),
          );
        }
        expectClose(await download(gpu, fused.y, n), ref.dropoutApply(want.y, mask, drop.p), {
          label: `${label} y`,
          atol: 1e-5,
          rtol: 1e-4,
        });
        expectClose(await download(gpu, fused.dx, n), wantGrads.dx, { label: `${label} dx`, atol: 1e-5, rtol: 1e-4 });
        const atol = 1e-5 * Math.sqrt(n);
        expectClose(await download(gpu, fused.dg, C), wantGrads.dgamma, { label: `${label} dgamma`, atol, rtol: 1e-4 });
        expectClose(await download(gpu, fused.db, C), wantGrads.dbeta, { label: `${label} dbeta`, atol, rtol: 1e-4 });
        for (const b of [...Object.values(fused), ...Object.values(plain), tmp]) gpu.pool.release(b);
      }
      for (const b of [xb, gb, bb, dyb]) gpu.pool.release(b);
    });
  }
});

describe('linear: ReLU, its mask and the bias gradient in the products', () => {
  it('relu epilogue, masked A and row sums: every variant against the reference', COMPILE_HEAVY, async () => {
    const { gpu } = ctx;
    // N ≥ 64 takes matmul_v4's 2x16 tile (narrower outputs 2x8); 68 leaves a partial tile at the right edge.
    const [M, K, N] = [33, 20, 68];
    const a = f(randomArray(M * K, 5)),
      b = f(randomArray(K * N, 6)),
      bias = f(randomArray(N, 7)),
      mask = f(randomArray(M * K, 8)); // ≤ 0 in about half the places
    const masked = a.map((v, i) => (mask[i] > 0 ? v : 0));
    const transpose = (m: Float64Array, r: number, c: number) =>
      Float64Array.from({ length: r * c }, (_, i) => m[(i % r) * c + Math.floor(i / r)]);
    const relu = ref.matmul(a, b, M, K, N).map((v, i) => Math.max(0, v + bias[i % N]));
    const prod = ref.matmul(masked, b, M, K, N);
    const rowSum = (m: Float64Array, i: number) => m.slice(i * K, (i + 1) * K).reduce((s, v) => s + v, 0);
    const sums = Float64Array.from({ length: M }, (_, i) => rowSum(masked, i));
    const bufs = {
      a: [upload(gpu, a), upload(gpu, transpose(a, M, K))],
      mask: [upload(gpu, mask), upload(gpu, transpose(mask, M, K))],
      b: [upload(gpu, b), upload(gpu, transpose(b, K, N))],
      bias: upload(gpu, bias),
    };
    const c = empty(gpu, M * N),
      rows = empty(gpu, M);
    const tol = { atol: 1e-5 * K, rtol: 1e-5 };
    // The layouts a linear layer uses (llvmpipe compiles each unrolled kernel for seconds, so not every one):
    // the forward x·wᵀ with the ReLU; dx = dy'·w and dw = dy'ᵀ·x with the mask and the row sums; the latter accumulating.
    // every variant's default tile, and v4's tiles sharing A (lanes over columns, op(A) broadcast: the epilogues
    // and the masked loads are their own code there)
    const variants = runnableVariants(gpu, MATMUL, { M, N, K });
    const sg = fixedSubgroupSize(gpu);
    const sharedA = variants.includes('v4') && sg ? [4 * sg, 8 * sg].map((tn) => ({ tm: 1, tn, AS: 1 })) : [];
    const choices = [
      ...variants.map((variant) => ({ variant, tile: undefined })),
      ...sharedA.map((tile) => ({ variant: 'v4' as const, tile })),
    ];
    const firsts = new Map<string, [Float32Array, Float32Array]>();
    for (const { variant, tile } of choices) {
      const at = (transA: boolean, transB: boolean) => ({
        s: { M, N, K, transA, transB, variant, subgroupTile: tile },
        a: bufs.a[+transA],
        b: bufs.b[+transB],
      });
      const label = (l: string) => `${variant}${tile ? ` ${JSON.stringify(tile)}` : ''} ${l}`;
      let o = at(false, true);
      matmulBias(gpu, o.a, o.b, bufs.bias, c, { ...o.s, relu: true });
      expectClose(await download(gpu, c, M * N), relu, { label: label('relu, Bᵀ'), ...tol });
      for (const transA of [false, true]) {
        o = at(transA, false);
        matmulBias(gpu, o.a, o.b, null, c, o.s, { maskA: bufs.mask[+transA], rowSums: rows });
        const [got, gotSums] = [await download(gpu, c, M * N), await download(gpu, rows, M)];
        expectClose(got, prod, { label: label(`masked A, transA=${transA}`), ...tol });
        expectClose(gotSums, sums, { label: label(`row sums, transA=${transA}`), ...tol });
        // every v4 tile sums each output (and row sum) over k in the same order: the same bits
        const key = `${variant} ${transA}`;
        if (variant === 'v4' && firsts.has(key)) {
          expectClose(got, firsts.get(key)![0], {
            label: label(`masked A, transA=${transA}, against v4's default tile`),
            atol: 0,
            rtol: 0,
          });
          expectClose(gotSums, firsts.get(key)![1], {
            label: label(`row sums, transA=${transA}, against v4's default tile`),
            atol: 0,
            rtol: 0,
          });
        } else firsts.set(key, [got, gotSums]);
      }
      gpu.write(rows, new Float32Array(M).fill(1));
      matmulBias(gpu, o.a, o.b, null, c, { ...o.s, accumulate: true }, { rowSums: rows });
      const plainSums = Float64Array.from({ length: M }, (_, i) => 1 + rowSum(a, i));
      expectClose(await download(gpu, rows, M), plainSums, { label: label('row sums accumulated, transA'), ...tol });
    }
    for (const x of [...bufs.a, ...bufs.mask, ...bufs.b, bufs.bias, c, rows]) gpu.pool.release(x);
  });

  it('F.linearRelu and the cross-entropy gradient its forward writes: bit for bit the unfused ops', async () => {
    const [batch, inF, outF, classes] = [17, 40, 12, 10];
    const run = (fused: boolean) =>
      tidy(() => {
        const x = F.tensor(randomArray(batch * inF, 9), [batch, inF], { requiresGrad: true });
        const w = F.tensor(randomArray(outF * inF, 10), [outF, inF], { requiresGrad: true });
        const b = F.tensor(randomArray(outF, 11), [outF], { requiresGrad: true });
        const w2 = F.tensor(randomArray(classes * outF, 12), [classes, outF], { requiresGrad: true });
        const target = F.tensor(
          Int32Array.from({ length: batch }, (_, i) => (i * 7) % classes),
          [batch],
          { dtype: 'int32' },
        );
        const h = fused ? F.linearRelu(x, w, b) : F.relu(F.linear(x, w, b));
        const logits = F.linear(h, w2);
        const sum = F.zeros([1]);
        const loss = F.crossEntropy(logits, target, { addTo: sum });
        // fused: backward() from the forward's own gradient; unfused: an explicit seed of ones
        if (fused) loss.backward();
        else loss.backward(F.ones([]));
        return [h, loss, sum, x.grad!, w.grad!, b.grad!, w2.grad!].map((t) => t.keep());
      });
    const fusedT = run(true);
    const plainT = run(false);
    const got = await Promise.all(fusedT.map((t: Tensor) => t.toArray()));
    const want = await Promise.all(plainT.map((t: Tensor) => t.toArray()));
    const names = ['h', 'loss', 'loss sum', 'dx', 'dw', 'db', 'dw2'];
    got.forEach((g, i) => {
      expect(bits(g), names[i]).toEqual(bits(want[i]));
    });
    expect(got[2][0]).toBe(got[1][0]); // addTo received the loss
    for (const t of [...fusedT, ...plainT]) t.dispose();
  });
});

describe('images and labels gathered together', () => {
  it('gatherBatch = gatherImages + gatherLabels, and the data set', async () => {
    const { gpu } = ctx;
    // 50 digit-sized images of arbitrary bytes (this file also runs in a browser page: no data files).
    const ds: Dataset = {
      images: Uint8Array.from({ length: 50 * 784 }, (_, i) => (i * 131 + 7) % 256),
      labels: Uint8Array.from({ length: 50 }, (_, i) => (i * 7) % 10),
      count: 50,
      rows: 28,
      cols: 28,
    };
    const data = GpuDataset.upload(gpu, ds, 'gather test');
    const order = Uint32Array.from([3, 41, 7, 0, 19, 49, 22]);
    const idx = data.indexList(order);
    const { x, y } = data.batch(idx, 2, 5, { mean: 0.1, std: 0.3 });
    const gotX = (await x.toArray()) as Float32Array;
    const gotY = (await y.toArray()) as Int32Array;
    for (let b = 0; b < 5; b++) {
      const i = order[2 + b];
      expect(gotY[b]).toBe(ds.labels[i]);
      expectClose(
        gotX.subarray(b * 784, (b + 1) * 784),
        Array.from(ds.images.subarray(i * 784, (i + 1) * 784), (v) => (v / 255 - 0.1) / 0.3),
        { label: `image ${b}`, atol: 1e-5, rtol: 1e-6 },
      );
    }
    const x2 = empty(gpu, 5 * 784),
      y2 = empty(gpu, 5);
    const { images, labels } = data as unknown as { images: GPUBuffer; labels: GPUBuffer };
    gatherImages(gpu, images, idx.buffer, x2, { batch: 5, offset: 2, pixels: 784, mean: 0.1, std: 0.3 });
    gatherLabels(gpu, labels, idx.buffer, y2, { batch: 5, offset: 2 });
    expect(bits(await download(gpu, x2, 5 * 784))).toEqual(bits(gotX));
    expect(await downloadI32(gpu, y2, 5)).toEqual(gotY);
    gatherBatch(gpu, images, labels, idx.buffer, x2, y2, { batch: 1, offset: 6, pixels: 784 });
    expect((await downloadI32(gpu, y2, 1))[0]).toBe(ds.labels[22]);
    for (const t of [idx, x, y]) t.dispose();
    for (const b of [x2, y2]) gpu.pool.release(b);
    data.dispose();
  });

  it('images whose pixels do not fill whole words (one pixel per invocation)', async () => {
    const { gpu } = ctx;
    const [count, pixels] = [3, 5];
    const bytes = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) % 256); // 15 pixels, padded to 4 words
    const images = upload(gpu, new Uint32Array(bytes.buffer));
    const labels = upload(gpu, Int32Array.from([7, 8, 9]));
    const idx = upload(gpu, Uint32Array.from([2, 0, 1]));
    const x = empty(gpu, count * pixels),
      y = empty(gpu, count);
    gatherBatch(gpu, images, labels, idx, x, y, { batch: 2, offset: 1, pixels });
    const want = [0, 1].flatMap((b) => Array.from(bytes.subarray([0, 1][b] * pixels, ([0, 1][b] + 1) * pixels), (v) => v / 255));
    expectClose((await download(gpu, x, 2 * pixels)) as Float32Array, want, { label: 'x', atol: 1e-7, rtol: 1e-6 });
    expect(Array.from(await downloadI32(gpu, y, 2))).toEqual([7, 8]);
    for (const b of [images, labels, idx, x, y]) gpu.pool.release(b);
  });
});

describe('conv2d: the bias gradient in the backward-weight kernels', () => {
  // The seed's layers at a small batch, and a padded one (v2 then reads padding rows as zeros instead of skipping).
  for (const s of [
    { N: 9, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5 },
    { N: 9, C: 10, H: 12, W: 12, O: 20, KH: 5, KW: 5 },
    { N: 3, C: 3, H: 7, W: 9, O: 5, KH: 3, KW: 3, padding: 1 },
  ]) {
    const { OH, OW } = conv2dOutputSize(s);
    const shape = `${s.N}x${s.C}x${s.H}x${s.W} k${s.KH}${s.padding ? ' pad 1' : ''} -> ${s.O}`;
    it(`${shape}: every choice a tuner may make, against the reference and the bias kernel`, COMPILE_HEAVY, async () => {
      const { gpu } = ctx;
      const nx = s.N * s.C * s.H * s.W,
        ny = s.N * s.O * OH * OW,
        nw = s.O * s.C * s.KH * s.KW;
      const x = f(randomArray(nx, 13)),
        dy = f(randomArray(ny, 14)),
        db0 = f(randomArray(s.O, 15));
      const want = ref.conv2dBackward(x, new Float64Array(nw), dy, s);
      const xb = upload(gpu, x),
        dyb = upload(gpu, dy),
        dw = empty(gpu, nw),
        db = empty(gpu, s.O),
        alone = empty(gpu, s.O);
      conv2dBackwardBias(gpu, dyb, alone, { N: s.N, O: s.O, OH, OW });
      const unfused = await download(gpu, alone, s.O);
      const atol = 2e-6 * Math.sqrt(s.N * OH * OW * 50);
      let worst = 0;
      for (const choice of CONV2D_BACKWARD_WEIGHT.choices(gpu, s)) {
        const label = `${choice.variant} ${JSON.stringify(choice.config ?? {})}`;
        const sizes = { ...s, variant: choice.variant, tile: choice.config as never };
        conv2dBackwardWeight(gpu, xb, dyb, dw, sizes, db);
        expectClose(await download(gpu, dw, nw), want.dw, { label: `${label} dw`, atol, rtol: 1e-5 });
        const got = await download(gpu, db, s.O);
        expectClose(got, want.db, { label: `${label} db`, atol, rtol: 1e-5 });
        got.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - unfused[i]) / Math.max(1e-30, Math.abs(unfused[i])));
        });
        gpu.write(db, Float32Array.from(db0));
        conv2dBackwardWeight(gpu, xb, dyb, dw, { ...sizes, accumulate: true }, db);
        expectClose(
          await download(gpu, db, s.O),
          want.db.map((v, i) => v + db0[i]),
          { label: `${label} db accumulated`, atol, rtol: 1e-5 },
        );
      }
      // Another summation order than the bias kernel's: equal within float32 rounding of the sum.
      expect(worst).toBeLessThan(1e-4);
      for (const b of [xb, dyb, dw, db, alone]) gpu.pool.release(b);
    });
  }
});
