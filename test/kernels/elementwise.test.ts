import { describe, expect, it } from 'vitest';
import { VariantError } from '../../src/errors.js';
import {
  ADD,
  AXPY,
  add,
  axpy,
  BROADCAST_SCALAR,
  broadcastScalar,
  COPY,
  capacityOf,
  copy,
  FILL,
  fill,
  type MapOp,
  MUL,
  mapOp,
  mul,
  relu,
  reluBackward,
  runMap,
  SCALE,
  SIGMOID,
  SIGMOID_GRAD,
  SUB,
  scale,
  sigmoid,
  sigmoidBackward,
  sub,
  TANH,
  TANH_GRAD,
  tanh,
  tanhBackward,
} from '../../src/shaders/elementwise.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { exactBuffer } from '../helpers/exact-buffer.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

describe('relu', () => {
  for (const n of [1, 255, 257, 4099]) {
    it(`forward and backward, n=${n}`, async () => {
      const { gpu } = ctx;
      const x = randomArray(n, n);
      const dy = randomArray(n, n + 1);
      const xb = upload(gpu, x),
        dyb = upload(gpu, dy),
        yb = empty(gpu, n),
        dxb = empty(gpu, n);
      relu(gpu, xb, yb, n);
      reluBackward(gpu, xb, dyb, dxb, n);
      expectClose(await download(gpu, yb, n), ref.relu(x), { label: `relu n=${n}`, atol: 0, rtol: 1e-6 });
      expectClose(await download(gpu, dxb, n), ref.reluBackward(x, dy), { label: `relu backward n=${n}`, atol: 0, rtol: 1e-6 });
      for (const b of [xb, dyb, yb, dxb]) gpu.pool.release(b);
    });
  }
});

describe('tanh and sigmoid', () => {
  // Values across the whole range: tiny ones (where tanh's relative precision matters), the saturated tails
  // (where a naive e^x/e^x would give NaN), and ordinary ones.
  const special = [0, 1e-7, -3e-5, 0.0999, 0.1, -0.1001, 0.5, -2, 9.5, -20, 44, 88.8, -100, 1000, -1e30];
  for (const n of [1, 3, 17, 257, 4099]) {
    it(`forward and backward (from the output), every variant and the default, n=${n}`, async () => {
      const { gpu } = ctx;
      const x = f(Array.from(randomArray(n, 30 + n, -6, 6), (v, i) => (i < special.length && i % 2 === 0 ? special[i] : v)));
      const dy = f(randomArray(n, 40 + n));
      const xb = upload(gpu, x),
        dyb = upload(gpu, dy);
      const [yt, ys, dxt, dxs] = [0, 1, 2, 3].map(() => empty(gpu, n));
      for (const variant of [...mapVariants([TANH, TANH_GRAD, SIGMOID, SIGMOID_GRAD], n, [xb, dyb, yt, ys, dxt, dxs]), undefined]) {
        const v = variant ?? 'default';
        tanh(gpu, xb, yt, { n, variant });
        sigmoid(gpu, xb, ys, { n, variant });
        const th = ref.tanh(x),
          sg = ref.sigmoid(x);
        // Relative to the value (tanh near 0 keeps its digits), 2 ulp-ish of float32 plus exp's error.
        expectClose(await download(gpu, yt, n), th, { atol: 1e-30, rtol: 2e-6, label: `tanh ${v} n=${n}` });
        expectClose(await download(gpu, ys, n), sg, { atol: 1e-30, rtol: 2e-6, label: `sigmoid ${v} n=${n}` });
        // The backward reads the forward's output as the GPU computed it (as autograd does).
        const yg = f(await download(gpu, yt, n)),
          sgg = f(await download(gpu, ys, n));
        tanhBackward(gpu, yt, dyb, dxt, { n, variant });
        sigmoidBackward(gpu, ys, dyb, dxs, { n, variant });
        expectClose(await download(gpu, dxt, n), ref.tanhBackward(yg, dy), { atol: 1e-7, rtol: 1e-5, label: `tanh grad ${v} n=${n}` });
        expectClose(await download(gpu, dxs, n), ref.sigmoidBackward(sgg, dy), {
          atol: 1e-7,
          rtol: 1e-5,
          label: `sigmoid grad ${v} n=${n}`,
        });
      }
      for (const b of [xb, dyb, yt, ys, dxt, dxs]) gpu.pool.release(b);
    });
  }
});

// Expected values in float64 from the f32-rounded inputs. sub, mul, axpy, fill and copy have no entry in
// test/reference (one-line maps); add and scale use it.
const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));

const MAPS: MapOp[] = [ADD, SUB, MUL, SCALE, AXPY, FILL, COPY, BROADCAST_SCALAR];

/** The variants of the map template these buffers allow: the same for every map op. */
function mapVariants(ops: MapOp[], n: number, buffers: GPUBuffer[]) {
  const capacity = capacityOf(buffers);
  const lists = ops.map((op) => runnableVariants(ctx.gpu, op, { n, capacity }));
  for (const l of lists) expect(l).toEqual(lists[0]);
  return lists[0];
}

describe('arithmetic maps', () => {
  for (const n of [1, 3, 4, 17, 33, 65, 1000, 4099]) {
    it(`add sub mul scale axpy fill copy broadcast, every variant and the default, n=${n}`, async () => {
      const { gpu } = ctx;
      const a = f(randomArray(n, 10 + n)),
        b = f(randomArray(n, 20 + n));
      const ab = upload(gpu, a),
        bb = upload(gpu, b);
      const out = Array.from({ length: 8 }, () => empty(gpu, n));
      const s = upload(gpu, [0.75]);
      for (const variant of [...mapVariants(MAPS, n, [ab, bb, ...out]), undefined]) {
        add(gpu, ab, bb, out[0], { n, variant });
        sub(gpu, ab, bb, out[1], { n, variant });
        mul(gpu, ab, bb, out[2], { n, variant });
        scale(gpu, ab, out[3], { n, alpha: -1.5, variant });
        copy(gpu, bb, out[4], { n, variant });
        axpy(gpu, ab, out[4], { n, alpha: 0.25, variant });
        fill(gpu, out[5], { n, value: 3.5, variant });
        copy(gpu, ab, out[6], { n, variant });
        broadcastScalar(gpu, s, out[7], { n, alpha: -2, variant });
        const tol = { atol: 1e-7, rtol: 1e-6 };
        const v = variant ?? 'default';
        expectClose(await download(gpu, out[0], n), ref.add(a, b), { ...tol, label: `add ${v}` });
        expectClose(
          await download(gpu, out[1], n),
          a.map((v, i) => v - b[i]),
          { ...tol, label: `sub ${v}` },
        );
        expectClose(
          await download(gpu, out[2], n),
          a.map((v, i) => v * b[i]),
          { ...tol, label: `mul ${v}` },
        );
        expectClose(await download(gpu, out[3], n), ref.scale(a, -1.5), { ...tol, label: `scale ${v}` });
        expectClose(
          await download(gpu, out[4], n),
          b.map((v, i) => v + 0.25 * a[i]),
          { ...tol, label: `axpy ${v}` },
        );
        expectClose(await download(gpu, out[5], n), new Float64Array(n).fill(3.5), { ...tol, label: `fill ${v}` });
        expectClose(await download(gpu, out[6], n), a, { atol: 0, rtol: 0, label: `copy ${v}` });
        expectClose(await download(gpu, out[7], n), new Float64Array(n).fill(-1.5), { ...tol, label: `broadcastScalar ${v}` });
      }
      for (const buf of [ab, bb, s, ...out]) gpu.pool.release(buf);
    });
  }

  it('in place: scale(x, x), add(a, b, a), sub(a, b, b), axpy(y, y)', async () => {
    const { gpu } = ctx;
    const n = 37;
    const a = f(randomArray(n, 1)),
      b = f(randomArray(n, 2));
    const x = upload(gpu, a),
      y = upload(gpu, a),
      bb = upload(gpu, b),
      y2 = upload(gpu, a),
      b2 = upload(gpu, b),
      z = upload(gpu, a);
    for (const variant of mapVariants([SCALE, ADD, SUB, AXPY], n, [x, y, bb, y2, b2, z])) {
      for (const [buf, data] of [
        [x, a],
        [y, a],
        [bb, b],
        [y2, a],
        [b2, b],
        [z, a],
      ] as const)
        gpu.write(buf, Float32Array.from(data));
      scale(gpu, x, x, { n, alpha: 2, variant });
      expectClose(await download(gpu, x, n), ref.scale(a, 2), { atol: 0, rtol: 1e-7, label: `scale in place ${variant}` });
      add(gpu, y, bb, y, { n, variant });
      expectClose(await download(gpu, y, n), ref.add(a, b), { atol: 1e-7, rtol: 1e-6, label: `add into a ${variant}` });
      sub(gpu, y2, b2, b2, { n, variant });
      expectClose(
        await download(gpu, b2, n),
        a.map((v, i) => v - b[i]),
        { atol: 1e-7, rtol: 1e-6, label: `sub into b ${variant}` },
      );
      axpy(gpu, z, z, { n, alpha: 1, variant });
      expectClose(await download(gpu, z, n), ref.scale(a, 2), { atol: 0, rtol: 1e-7, label: `axpy(y, y) ${variant}` });
    }
    for (const buf of [x, y, bb, y2, b2, z]) gpu.pool.release(buf);
  });

  it('exact-size buffers: the default falls back to v1 when n % 4 ≠ 0, forcing v2 there fails, and v2 masks nothing past n', async () => {
    const { gpu } = ctx;
    for (const n of [5, 8, 33]) {
      const a = f(randomArray(n, 3)),
        b = f(randomArray(n, 4));
      const ab = exactBuffer(gpu, a),
        bb = exactBuffer(gpu, b),
        yb = exactBuffer(gpu, new Float32Array(n));
      expect(mapVariants([MUL, AXPY], n, [ab, bb, yb])).toEqual(n % 4 ? ['v1'] : ['v1', 'v2']);
      if (n % 4) expect(() => mul(gpu, ab, bb, yb, { n, variant: 'v2' })).toThrow(VariantError);
      mul(gpu, ab, bb, yb, { n });
      axpy(gpu, ab, yb, { n, alpha: 1 });
      expectClose(
        await download(gpu, yb, n),
        a.map((v, i) => v * b[i] + v),
        { atol: 1e-7, rtol: 1e-6, label: `exact n=${n}` },
      );
      for (const buf of [ab, bb, yb]) buf.destroy();
    }
  });

  it('the map template with 1 to 5 units per invocation (GPUs take 1, llvmpipe 4)', async () => {
    const { gpu } = ctx;
    const TEST_FMA = mapOp(
      {
        name: 'test_fma',
        params: { alpha: 'f32' },
        inputs: ['a', 'b'],
        outputs: ['y', 'z'],
        loads: ['z'],
        body: 'y = a * b + p.alpha; z += a;',
      },
      ({ n }) => ({ flops: 3 * n, bytes: 20 * n }),
    );
    for (const units of [1, 2, 3, 4, 5]) {
      for (const n of [1, 7, 61, 1001]) {
        const a = f(randomArray(n, units)),
          b = f(randomArray(n, n));
        const ab = upload(gpu, a),
          bb = upload(gpu, b),
          yb = empty(gpu, n),
          zb = upload(gpu, b);
        for (const variant of runnableVariants(gpu, TEST_FMA, { n, capacity: capacityOf([ab, bb, yb, zb]) })) {
          gpu.write(zb, Float32Array.from(b));
          runMap(gpu, TEST_FMA, { a: ab, b: bb, y: yb, z: zb }, { n, params: { alpha: 0.5 }, variant, units });
          expectClose(
            await download(gpu, yb, n),
            a.map((v, i) => v * b[i] + 0.5),
            { atol: 1e-7, rtol: 1e-6, label: `y units=${units} ${variant} n=${n}` },
          );
          expectClose(
            await download(gpu, zb, n),
            a.map((v, i) => v + b[i]),
            { atol: 1e-7, rtol: 1e-6, label: `z units=${units} ${variant} n=${n}` },
          );
        }
        for (const buf of [ab, bb, yb, zb]) gpu.pool.release(buf);
      }
    }
  });

  it('leaves elements past n untouched', async () => {
    const { gpu } = ctx;
    const y = upload(gpu, new Float32Array(12).fill(7));
    for (const variant of runnableVariants(gpu, FILL, { n: 5, capacity: capacityOf([y]) })) {
      gpu.write(y, new Float32Array(12).fill(7));
      fill(gpu, y, { n: 5, value: 1, variant });
      expect(Array.from(await download(gpu, y, 12))).toEqual([1, 1, 1, 1, 1, 7, 7, 7, 7, 7, 7, 7]);
    }
    gpu.pool.release(y);
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
