import { describe, expect, it } from 'vitest';
import {
  type Conv2dSizes,
  type Conv2dTile,
  type Conv2dVariant,
  type Conv2dWeightTile,
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
const VARIANTS: Conv2dVariant[] = ['v1', 'v2', 'v3', 'v4'];

type Shape = Omit<Conv2dSizes, 'variant'> & { label: string };
const SHAPES: Shape[] = [
  ...[1, 3, 17, 64].map((N) => ({ label: `seed conv1, batch ${N}`, N, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5 })),
  ...[1, 3, 33, 64, 256].map((N) => ({ label: `seed conv2, batch ${N}`, N, C: 10, H: 12, W: 12, O: 20, KH: 5, KW: 5 })),
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

interface Data {
  x: Float64Array; w: Float64Array; b: Float64Array; dy: Float64Array; dw0: Float64Array; db0: Float64Array;
  y: Float64Array; yn: Float64Array; grads: ref.Conv2dGrads;
}
const data = new Map<string, Data>();

/** Inputs (float32-representable) and float64 reference results for a shape, computed once per shape. */
function dataFor(s: Shape): Data {
  let d = data.get(s.label);
  if (d) return d;
  const { N, C, H, W, O, KH, KW } = s;
  const { OH, OW } = conv2dOutputSize(s);
  const nx = N * C * H * W, nw = O * C * KH * KW, ny = N * O * OH * OW;
  const seed = nx + nw + OH;
  const r = (n: number, k: number) => Float64Array.from(randomArray(n, seed + k), Math.fround);
  const [x, w, b, dy, dw0, db0] = [r(nx, 0), r(nw, 1), r(O, 2), r(ny, 3), r(nw, 4), r(O, 5)];
  d = { x, w, b, dy, dw0, db0, y: ref.conv2d(x, w, b, s), yn: ref.conv2d(x, w, null, s), grads: ref.conv2dBackward(x, w, dy, s) };
  data.set(s.label, d);
  return d;
}

/** Runs forward (with and without bias) and every backward on the GPU and compares with the reference. */
async function check(s: Shape, variant: Conv2dVariant, tiles: { tile?: Conv2dTile; weightTile?: Conv2dWeightTile } = {}) {
  const { gpu } = ctx;
  const sizes: Conv2dSizes = { ...s, variant };
  const { N, C, H, W, O, KH, KW } = s;
  const { OH, OW } = conv2dOutputSize(sizes);
  const nx = N * C * H * W, nw = O * C * KH * KW, ny = N * O * OH * OW;
  const d = dataFor(s);
  const xb = upload(gpu, d.x), wb = upload(gpu, d.w), bb = upload(gpu, d.b), dyb = upload(gpu, d.dy);
  const yb = empty(gpu, ny), ynb = empty(gpu, ny), dxb = empty(gpu, nx), dwb = empty(gpu, nw), dbb = empty(gpu, O);
  const dwAcc = upload(gpu, d.dw0), dbAcc = upload(gpu, d.db0);

  conv2d(gpu, xb, wb, bb, yb, { ...sizes, tile: tiles.tile });
  conv2d(gpu, xb, wb, null, ynb, { ...sizes, tile: tiles.tile });
  conv2dBackwardInput(gpu, dyb, wb, dxb, { ...sizes, tile: tiles.tile });
  conv2dBackwardWeight(gpu, xb, dyb, dwb, { ...sizes, tile: tiles.weightTile });
  conv2dBackwardWeight(gpu, xb, dyb, dwAcc, { ...sizes, tile: tiles.weightTile, accumulate: true });
  conv2dBackwardBias(gpu, dyb, dbb, { N, O, OH, OW, variant });
  conv2dBackwardBias(gpu, dyb, dbAcc, { N, O, OH, OW, variant, accumulate: true });

  // float32 sums of C·KH·KW (or N·OH·OW) products of values in [-1, 1]
  const atol = (terms: number) => 2e-6 * Math.sqrt(terms * 50);
  const tag = `${s.label} ${variant}${tiles.tile || tiles.weightTile ? ` ${JSON.stringify(tiles)}` : ''}`;
  const g = d.grads;
  expectClose(await download(gpu, yb, ny), d.y, { label: `${tag} y`, atol: atol(C * KH * KW), rtol: 1e-5 });
  expectClose(await download(gpu, ynb, ny), d.yn, { label: `${tag} y (no bias)`, atol: atol(C * KH * KW), rtol: 1e-5 });
  expectClose(await download(gpu, dxb, nx), g.dx, { label: `${tag} dx`, atol: atol(O * KH * KW), rtol: 1e-5 });
  const atolW = atol(N * OH * OW);
  expectClose(await download(gpu, dwb, nw), g.dw, { label: `${tag} dw`, atol: atolW, rtol: 1e-5 });
  expectClose(await download(gpu, dwAcc, nw), g.dw.map((v, i) => v + d.dw0[i]), { label: `${tag} dw accumulate`, atol: atolW, rtol: 1e-5 });
  expectClose(await download(gpu, dbb, O), g.db, { label: `${tag} db`, atol: atolW, rtol: 1e-5 });
  expectClose(await download(gpu, dbAcc, O), g.db.map((v, i) => v + d.db0[i]), { label: `${tag} db accumulate`, atol: atolW, rtol: 1e-5 });
  for (const buf of [xb, wb, bb, dyb, yb, ynb, dxb, dwb, dbb, dwAcc, dbAcc]) gpu.pool.release(buf);
}

describe('conv2d', () => {
  for (const s of SHAPES) {
    for (const variant of VARIANTS) it(`${s.label} (${variant})`, () => check(s, variant));
  }

  // v2 tiles other than the defaults: channel and column tails, one-lane workgroups, many row slices.
  const odd = SHAPES.filter((s) => ['odd k3x2 pad 2', 'stride 2 pad 1', 'seed conv2, batch 3'].includes(s.label));
  const TILES: { tile: Conv2dTile; weightTile: Conv2dWeightTile }[] = [
    { tile: { OT: 3, PT: 5, WG: 16 }, weightTile: { OT: 3, PT: 3, WG: 4, groups: 512 } },
    { tile: { OT: 4, PT: 3, WG: 1 }, weightTile: { OT: 4, PT: 1, WG: 1, groups: 1 } },
  ];
  for (const s of odd) {
    for (const t of TILES) it(`${s.label} (v2 tile ${t.tile.OT}x${t.tile.PT}, weight tile ${t.weightTile.OT}x${t.weightTile.PT})`, () => check(s, 'v2', t));
  }

  // v4 tiles other than the defaults: several column-block classes with channel and column tails, one-column
  // blocks, and weight tiles with several steps per row (PT a multiple of the subgroup size, 8 on llvmpipe).
  // v4 ignores WG (a workgroup is one subgroup); without subgroups these run as v2 tiles.
  const TILES_V4: { tile: Conv2dTile; weightTile: Conv2dWeightTile }[] = [
    { tile: { OT: 3, PT: 4, WG: 8 }, weightTile: { OT: 3, PT: 8, WG: 8, groups: 512 } },
    { tile: { OT: 4, PT: 1, WG: 8 }, weightTile: { OT: 4, PT: 16, WG: 8, groups: 1 } },
  ];
  for (const s of odd) {
    for (const t of TILES_V4) it(`${s.label} (v4 tile ${t.tile.OT}x${t.tile.PT}, weight tile ${t.weightTile.OT}x${t.weightTile.PT})`, () => check(s, 'v4', t));
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
