import { describe, expect, it } from 'vitest';
import { VariantError } from '../../src/errors.js';
import {
  MAX_POOL2D,
  MAX_POOL2D_BACKWARD,
  maxPool2d,
  maxPool2dBackward,
  maxPool2dBackwardCodes,
  maxPool2dCodes,
  type PoolSizes,
  poolCodes,
  poolOutputSize,
} from '../../src/shaders/pool.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, downloadI32, downloadU32, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

/** The variants that can pool these sizes (forward and backward agree: v2 only for 2x2 stride 2, W % 8 = 0). */
function variants(sizes: PoolSizes) {
  const names = runnableVariants(ctx.gpu, MAX_POOL2D, sizes);
  expect(runnableVariants(ctx.gpu, MAX_POOL2D_BACKWARD, sizes)).toEqual(names);
  return names;
}

// [N, C, H, W, kernel, stride]
const SHAPES: [number, number, number, number, number, number][] = [
  [1, 1, 2, 2, 2, 2],
  [1, 1, 5, 7, 2, 2],
  [2, 3, 9, 9, 2, 2],
  [3, 2, 24, 24, 2, 2],
  [2, 3, 8, 8, 2, 2],
  [1, 3, 9, 16, 2, 2], // odd H, aligned W: v2 zeroes the dropped last row in the backward
  [2, 1, 16, 9, 2, 2],
  [2, 2, 9, 9, 3, 2], // overlapping windows
  [1, 2, 5, 7, 3, 2],
  [2, 1, 7, 6, 2, 1], // heavily overlapping
  [1, 2, 10, 11, 3, 3],
  [2, 2, 11, 10, 2, 3], // stride > kernel: gaps between windows
  [1, 1, 4, 5, 1, 1],
  [64, 10, 24, 24, 2, 2], // the seed, after conv1
  [64, 20, 8, 8, 2, 2], // the seed, after conv2
  [17, 5, 12, 12, 2, 2],
];

describe('maxPool2d', () => {
  for (const [N, C, H, W, kernel, stride] of SHAPES) {
    const sizes: PoolSizes = { N, C, H, W, kernel, stride };
    for (const ties of [false, true]) {
      it(`${N}x${C}x${H}x${W} k${kernel} s${stride}${ties ? ' with ties' : ''}, every variant`, async () => {
        for (const variant of variants(sizes)) {
          const label = `${variant} ${N}x${C}x${H}x${W} k${kernel} s${stride}${ties ? ' with ties' : ''}`;
          const { gpu } = ctx;
          const n = N * C * H * W;
          // With ties: values from {-1, 0, 1}, so windows often hold several maxima (the first must win).
          let x = Float64Array.from(Float32Array.from(randomArray(n, n + kernel, -1, 1)));
          if (ties) x = x.map((v) => Math.round(v));
          const { OH, OW } = poolOutputSize(sizes);
          const expected = ref.maxPool2d(x, sizes);
          expect([OH, OW]).toEqual([expected.OH, expected.OW]);
          const m = N * C * OH * OW;
          const dy = randomArray(m, m + 1);
          const xb = upload(gpu, x),
            yb = empty(gpu, m),
            ab = empty(gpu, m),
            dyb = upload(gpu, dy),
            dxb = upload(gpu, new Float32Array(n).fill(9));
          maxPool2d(gpu, xb, yb, ab, { ...sizes, variant });
          maxPool2dBackward(gpu, dyb, ab, dxb, { ...sizes, variant });
          expectClose(await download(gpu, yb, m), expected.y, { atol: 0, rtol: 0, label: `${label} y` });
          expect(Array.from(await downloadI32(gpu, ab, m)), `${label} argmax`).toEqual(Array.from(expected.argmax));
          const dx = ref.maxPool2dBackward(Float64Array.from(Float32Array.from(dy)), expected.argmax, sizes);
          expectClose(await download(gpu, dxb, n), dx, { atol: 1e-6, rtol: 1e-6, label: `${label} dx` });
          // Without argmax (inference) y is the same.
          const y2 = empty(gpu, m);
          maxPool2d(gpu, xb, y2, null, { ...sizes, variant });
          expectClose(await download(gpu, y2, m), expected.y, { atol: 0, rtol: 0, label: `${label} y without argmax` });
          for (const b of [xb, yb, ab, dyb, dxb, y2]) gpu.pool.release(b);
        }
      });
    }
  }

  it('rejects windows larger than the input and v2 on unaligned shapes', () => {
    const { gpu } = ctx;
    const b = empty(gpu, 64);
    expect(() => maxPool2d(gpu, b, b, null, { N: 1, C: 1, H: 1, W: 5 })).toThrow(/smaller than the 2x2 window/);
    expect(() => maxPool2d(gpu, b, b, null, { N: 1, C: 1, H: 4, W: 6, variant: 'v2' })).toThrow(VariantError);
    expect(() => maxPool2d(gpu, b, b, null, { N: 1, C: 1, H: 4, W: 6, variant: 'v2' })).toThrow(
      /max_pool2d variant v2 cannot run here: it needs kernel = stride = 2, W % 8 = 0/,
    );
    expect(() => maxPool2dBackward(gpu, b, b, b, { N: 1, C: 1, H: 4, W: 6, variant: 'v2' })).toThrow(
      /max_pool2d.backward variant v2 cannot run here/,
    );
    gpu.pool.release(b);
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});

// Window codes (a byte per 2x2 window: where its maximum lies, or 255 where the ReLU cut it) from the argmax, the
// argmax they stand for, and the backward from them against the float64 scatter of the argmax: aligned rows (vec4
// stores), odd widths (element stores, the column past the windows zeroed) and odd heights (the row past them).
describe('maxPool2dCodes and maxPool2dBackwardCodes', () => {
  const coded = SHAPES.filter(([N, C, H, W, k, s]) => poolCodes({ N, C, H, W, kernel: k, stride: s }) === null);
  it('the shapes cover both kinds of stores and both tails', () => {
    expect(coded.some(([, , , W]) => W % 8 === 0) && coded.some(([, , , W]) => W % 2 === 1)).toBe(true);
    expect(coded.some(([, , H]) => H % 2 === 1)).toBe(true);
  });
  for (const [N, C, H, W] of coded) {
    for (const relu of [false, true]) {
      it(`${N}x${C}x${H}x${W}${relu ? ' with relu' : ''}: codes, the argmax they stand for, and the backward`, async () => {
        const { gpu } = ctx;
        const sizes: PoolSizes = { N, C, H, W, relu };
        const n = N * C * H * W;
        // values from {-1, 0, 1}: ties (the first maximum wins) and, with relu, windows cut at ≤ 0
        const x = Float64Array.from(randomArray(n, n + 7, -1, 1), (v) => Math.round(v));
        const { OH, OW } = poolOutputSize(sizes);
        const m = N * C * OH * OW;
        const pooled = ref.maxPool2d(x, sizes);
        const argmax = relu ? Int32Array.from(pooled.argmax, (j, i) => (pooled.y[i] <= 0 ? -1 : j)) : pooled.argmax;
        const want = ref.poolCodes(argmax, sizes);
        expect(Array.from(ref.argmaxOfCodes(want, sizes))).toEqual(Array.from(argmax));
        const dy = Float64Array.from(Float32Array.from(randomArray(m, m + 1)));
        const [xb, yb, ab, cb, dyb] = [
          upload(gpu, x),
          empty(gpu, m),
          empty(gpu, m),
          upload(gpu, new Uint32Array(m / 4).fill(0xabababab)),
          upload(gpu, dy),
        ];
        const dxb = upload(gpu, new Float32Array(n).fill(9));
        maxPool2d(gpu, xb, yb, ab, sizes);
        maxPool2dCodes(gpu, ab, cb, sizes);
        maxPool2dBackwardCodes(gpu, dyb, cb, dxb, sizes);
        expect(Array.from(await downloadU32(gpu, cb, m / 4)), 'codes').toEqual(Array.from(want));
        expectClose(await download(gpu, dxb, n), ref.maxPool2dBackward(dy, argmax, sizes), { atol: 0, rtol: 0, label: 'dx' });
        for (const b of [xb, yb, ab, cb, dyb, dxb]) gpu.pool.release(b);
      });
    }
  }

  it('rejects pools without codes, naming the op', () => {
    const { gpu } = ctx;
    const b = empty(gpu, 64);
    expect(() => maxPool2dCodes(gpu, b, b, { N: 1, C: 1, H: 8, W: 8, kernel: 3, stride: 2 })).toThrow(
      /maxPool2dCodes: window codes are for 2x2 windows at stride 2, not 3x3 at stride 2/,
    );
    expect(() => maxPool2dBackwardCodes(gpu, b, b, b, { N: 1, C: 1, H: 6, W: 6 })).toThrow(
      /maxPool2dBackwardCodes: pooled rows of 3 outputs are not whole words of four codes/,
    );
    gpu.pool.release(b);
    expect(gpu.pool.stats().bytesInUse).toBe(0);
  });
});
