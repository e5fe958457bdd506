import { describe, expect, it } from 'vitest';
import {
  type Conv2dSizes,
  type Conv2dVariant,
  conv2d,
  conv2dBackwardBias,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dOutputSize,
} from '../../src/shaders/conv2d.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();
const VARIANTS: Conv2dVariant[] = ['v1', 'v2', 'v3'];

type Shape = Omit<Conv2dSizes, 'variant'> & { label: string };
const SHAPES: Shape[] = [
  ...[1, 3, 64].map((N) => ({ label: `seed conv1, batch ${N}`, N, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5 })),
  ...[1, 3, 64].map((N) => ({ label: `seed conv2, batch ${N}`, N, C: 10, H: 12, W: 12, O: 20, KH: 5, KW: 5 })),
  { label: 'odd k3', N: 2, C: 3, H: 7, W: 9, O: 5, KH: 3, KW: 3 },
  { label: 'odd k3 pad 1', N: 2, C: 3, H: 7, W: 9, O: 5, KH: 3, KW: 3, padding: 1 },
  { label: 'odd k3x2 pad 2', N: 3, C: 2, H: 6, W: 11, O: 7, KH: 3, KW: 2, padding: 2 },
  { label: '1x1', N: 3, C: 17, H: 5, W: 6, O: 33, KH: 1, KW: 1 },
  { label: '1x1 pad 1 stride 2', N: 2, C: 4, H: 5, W: 6, O: 3, KH: 1, KW: 1, stride: 2, padding: 1 },
  { label: 'stride 2', N: 2, C: 3, H: 9, W: 10, O: 6, KH: 3, KW: 3, stride: 2 },
  { label: 'stride 2 pad 1', N: 3, C: 5, H: 8, W: 7, O: 9, KH: 3, KW: 3, stride: 2, padding: 1 },
  { label: 'stride 3 pad 2 k5x4', N: 1, C: 2, H: 13, W: 11, O: 4, KH: 5, KW: 4, stride: 3, padding: 2 },
  { label: 'kernel = input', N: 5, C: 3, H: 4, W: 4, O: 2, KH: 4, KW: 4 },
  { label: 'wide C, odd O', N: 2, C: 33, H: 10, W: 10, O: 17, KH: 3, KW: 3, padding: 1 },
];

function atolFor(s: Shape): number {
  // float32 sums of C·KH·KW (or N·OH·OW) products of values in [-1, 1]
  return 2e-6 * Math.sqrt(s.C * s.KH * s.KW * 50);
}

describe('conv2d', () => {
  for (const s of SHAPES) {
    for (const variant of VARIANTS) {
      it(`${s.label} (${variant})`, async () => {
        const { gpu } = ctx;
        const sizes: Conv2dSizes = { ...s, variant };
        const { OH, OW } = conv2dOutputSize(sizes);
        const { N, C, H, W, O, KH, KW } = s;
        const nx = N * C * H * W, nw = O * C * KH * KW, ny = N * O * OH * OW;
        const seed = nx + nw + OH;
        const x = Float64Array.from(randomArray(nx, seed), Math.fround);
        const w = Float64Array.from(randomArray(nw, seed + 1), Math.fround);
        const b = Float64Array.from(randomArray(O, seed + 2), Math.fround);
        const dy = Float64Array.from(randomArray(ny, seed + 3), Math.fround);
        const dw0 = Float64Array.from(randomArray(nw, seed + 4), Math.fround);
        const db0 = Float64Array.from(randomArray(O, seed + 5), Math.fround);
        const xb = upload(gpu, x), wb = upload(gpu, w), bb = upload(gpu, b), dyb = upload(gpu, dy);
        const yb = empty(gpu, ny), ynb = empty(gpu, ny), dxb = empty(gpu, nx), dwb = empty(gpu, nw), dbb = empty(gpu, O);
        const dwAcc = upload(gpu, dw0), dbAcc = upload(gpu, db0);

        conv2d(gpu, xb, wb, bb, yb, sizes);
        conv2d(gpu, xb, wb, null, ynb, sizes);
        conv2dBackwardInput(gpu, dyb, wb, dxb, sizes);
        conv2dBackwardWeight(gpu, xb, dyb, dwb, sizes);
        conv2dBackwardWeight(gpu, xb, dyb, dwAcc, { ...sizes, accumulate: true });
        conv2dBackwardBias(gpu, dyb, dbb, { N, O, OH, OW, variant });
        conv2dBackwardBias(gpu, dyb, dbAcc, { N, O, OH, OW, variant, accumulate: true });

        const p = { ...s };
        const y = ref.conv2d(x, w, b, p);
        const yn = ref.conv2d(x, w, null, p);
        const g = ref.conv2dBackward(x, w, dy, p);
        const atol = atolFor(s);
        const atolW = 2e-6 * Math.sqrt(N * OH * OW * 50);
        const tag = `${s.label} ${variant}`;
        expectClose(await download(gpu, yb, ny), y, { label: `${tag} y`, atol, rtol: 1e-5 });
        expectClose(await download(gpu, ynb, ny), yn, { label: `${tag} y (no bias)`, atol, rtol: 1e-5 });
        expectClose(await download(gpu, dxb, nx), g.dx, { label: `${tag} dx`, atol: 2e-6 * Math.sqrt(O * KH * KW * 50), rtol: 1e-5 });
        expectClose(await download(gpu, dwb, nw), g.dw, { label: `${tag} dw`, atol: atolW, rtol: 1e-5 });
        expectClose(await download(gpu, dwAcc, nw), g.dw.map((v, i) => v + dw0[i]), { label: `${tag} dw accumulate`, atol: atolW, rtol: 1e-5 });
        expectClose(await download(gpu, dbb, O), g.db, { label: `${tag} db`, atol: atolW, rtol: 1e-5 });
        expectClose(await download(gpu, dbAcc, O), g.db.map((v, i) => v + db0[i]), { label: `${tag} db accumulate`, atol: atolW, rtol: 1e-5 });
        for (const buf of [xb, wb, bb, dyb, yb, ynb, dxb, dwb, dbb, dwAcc, dbAcc]) gpu.pool.release(buf);
      });
    }
  }

  it('rejects a kernel larger than the padded input', () => {
    const { gpu } = ctx;
    const b = empty(gpu, 16);
    expect(() => conv2d(gpu, b, b, null, b, { N: 1, C: 1, H: 3, W: 3, O: 1, KH: 5, KW: 5 })).toThrow(/conv2d: bad sizes/);
    gpu.pool.release(b);
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
