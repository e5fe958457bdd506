import { describe, expect, it } from 'vitest';
import { VariantError } from '../../src/errors.js';
import {
  CONV2D_BACKWARD_BIAS,
  CONV2D_BACKWARD_INPUT,
  CONV2D_BACKWARD_WEIGHT,
  CONV2D_FORWARD,
  type Conv2dBiasVariant,
  type Conv2dSizes,
  type Conv2dTile,
  type Conv2dVariant,
  type Conv2dWeightTile,
  conv2d,
  conv2dBackwardBias,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dOutputSize,
} from '../../src/shaders/conv2d/index.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableChoices, runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

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
  x: Float64Array;
  w: Float64Array;
  b: Float64Array;
  dy: Float64Array;
  dw0: Float64Array;
  db0: Float64Array;
  y: Float64Array;
  yn: Float64Array;
  grads: ref.Conv2dGrads;
}
const data = new Map<string, Data>();

/** Inputs (float32-representable) and float64 reference results for a shape, computed once per shape. */
function dataFor(s: Shape): Data {
  let d = data.get(s.label);
  if (d) return d;
  const { N, C, H, W, O, KH, KW } = s;
  const { OH, OW } = conv2dOutputSize(s);
  const nx = N * C * H * W,
    nw = O * C * KH * KW,
    ny = N * O * OH * OW;
  const seed = nx + nw + OH;
  const r = (n: number, k: number) => Float64Array.from(randomArray(n, seed + k), Math.fround);
  const [x, w, b, dy, dw0, db0] = [r(nx, 0), r(nw, 1), r(O, 2), r(ny, 3), r(nw, 4), r(O, 5)];
  d = { x, w, b, dy, dw0, db0, y: ref.conv2d(x, w, b, s), yn: ref.conv2d(x, w, null, s), grads: ref.conv2dBackward(x, w, dy, s) };
  data.set(s.label, d);
  return d;
}

// float32 sums of C·KH·KW (or N·OH·OW) products of values in [-1, 1]
const atol = (terms: number) => 2e-6 * Math.sqrt(terms * 50);
const tagOf = (s: Shape, variant: string, tile?: Conv2dTile | Conv2dWeightTile) =>
  `${s.label} ${variant}${tile ? ` ${JSON.stringify(tile)}` : ''}`;

/** Forward, with and without bias, against the reference. */
async function checkForward(s: Shape, variant: Conv2dVariant, tile?: Conv2dTile) {
  const { gpu } = ctx;
  const { N, O } = s;
  const { OH, OW } = conv2dOutputSize(s);
  const ny = N * O * OH * OW;
  const d = dataFor(s);
  const xb = upload(gpu, d.x),
    wb = upload(gpu, d.w),
    bb = upload(gpu, d.b),
    yb = empty(gpu, ny),
    ynb = empty(gpu, ny);
  conv2d(gpu, xb, wb, bb, yb, { ...s, variant, tile });
  conv2d(gpu, xb, wb, null, ynb, { ...s, variant, tile });
  const tag = tagOf(s, variant, tile);
  expectClose(await download(gpu, yb, ny), d.y, { label: `${tag} y`, atol: atol(s.C * s.KH * s.KW), rtol: 1e-5 });
  expectClose(await download(gpu, ynb, ny), d.yn, { label: `${tag} y (no bias)`, atol: atol(s.C * s.KH * s.KW), rtol: 1e-5 });
  for (const buf of [xb, wb, bb, yb, ynb]) gpu.pool.release(buf);
}

async function checkBackwardInput(s: Shape, variant: Conv2dVariant, tile?: Conv2dTile) {
  const { gpu } = ctx;
  const nx = s.N * s.C * s.H * s.W;
  const d = dataFor(s);
  const wb = upload(gpu, d.w),
    dyb = upload(gpu, d.dy),
    dxb = empty(gpu, nx);
  conv2dBackwardInput(gpu, dyb, wb, dxb, { ...s, variant, tile });
  expectClose(await download(gpu, dxb, nx), d.grads.dx, {
    label: `${tagOf(s, variant, tile)} dx`,
    atol: atol(s.O * s.KH * s.KW),
    rtol: 1e-5,
  });
  for (const buf of [wb, dyb, dxb]) gpu.pool.release(buf);
}

/** dw = … and dw += … */
async function checkBackwardWeight(s: Shape, variant: Conv2dVariant, tile?: Conv2dWeightTile) {
  const { gpu } = ctx;
  const nw = s.O * s.C * s.KH * s.KW;
  const { OH, OW } = conv2dOutputSize(s);
  const d = dataFor(s);
  const xb = upload(gpu, d.x),
    dyb = upload(gpu, d.dy),
    dwb = empty(gpu, nw),
    dwAcc = upload(gpu, d.dw0);
  conv2dBackwardWeight(gpu, xb, dyb, dwb, { ...s, variant, tile });
  conv2dBackwardWeight(gpu, xb, dyb, dwAcc, { ...s, variant, tile, accumulate: true });
  const tag = tagOf(s, variant, tile);
  const atolW = atol(s.N * OH * OW);
  expectClose(await download(gpu, dwb, nw), d.grads.dw, { label: `${tag} dw`, atol: atolW, rtol: 1e-5 });
  expectClose(
    await download(gpu, dwAcc, nw),
    d.grads.dw.map((v, i) => v + d.dw0[i]),
    { label: `${tag} dw accumulate`, atol: atolW, rtol: 1e-5 },
  );
  for (const buf of [xb, dyb, dwb, dwAcc]) gpu.pool.release(buf);
}

/** db = … and db += … */
async function checkBackwardBias(s: Shape, variant: Conv2dBiasVariant) {
  const { gpu } = ctx;
  const { N, O } = s;
  const { OH, OW } = conv2dOutputSize(s);
  const d = dataFor(s);
  const dyb = upload(gpu, d.dy),
    dbb = empty(gpu, O),
    dbAcc = upload(gpu, d.db0);
  conv2dBackwardBias(gpu, dyb, dbb, { N, O, OH, OW, variant });
  conv2dBackwardBias(gpu, dyb, dbAcc, { N, O, OH, OW, variant, accumulate: true });
  const tag = tagOf(s, variant);
  const atolW = atol(N * OH * OW);
  expectClose(await download(gpu, dbb, O), d.grads.db, { label: `${tag} db`, atol: atolW, rtol: 1e-5 });
  expectClose(
    await download(gpu, dbAcc, O),
    d.grads.db.map((v, i) => v + d.db0[i]),
    { label: `${tag} db accumulate`, atol: atolW, rtol: 1e-5 },
  );
  for (const buf of [dyb, dbb, dbAcc]) gpu.pool.release(buf);
}

const biasSizes = (s: Shape) => ({ N: s.N, O: s.O, ...conv2dOutputSize(s) });

describe('conv2d', () => {
  // Every variant of each op's registry that this adapter can run for the shape (forcing any other one must
  // fail with a VariantError: v4 without fixed-size subgroups, backward-input v2-v4 at stride != 1, v3 with a
  // kernel too large to stage).
  for (const s of SHAPES) {
    it(`${s.label}: ${CONV2D_FORWARD.name}`, async () => {
      for (const v of runnableVariants(ctx.gpu, CONV2D_FORWARD, s)) await checkForward(s, v);
    });
    it(`${s.label}: ${CONV2D_BACKWARD_INPUT.name}`, async () => {
      for (const v of runnableVariants(ctx.gpu, CONV2D_BACKWARD_INPUT, s)) await checkBackwardInput(s, v);
    });
    it(`${s.label}: ${CONV2D_BACKWARD_WEIGHT.name}`, async () => {
      for (const v of runnableVariants(ctx.gpu, CONV2D_BACKWARD_WEIGHT, s)) await checkBackwardWeight(s, v);
    });
    it(`${s.label}: ${CONV2D_BACKWARD_BIAS.name}`, async () => {
      for (const v of runnableVariants(ctx.gpu, CONV2D_BACKWARD_BIAS, biasSizes(s))) await checkBackwardBias(s, v);
    });
  }

  /** Tiles other than the defaults for one variant; where the variant cannot run, forcing it must fail. */
  async function checkTiles(s: Shape, variant: 'v2' | 'v4', t: { tile: Conv2dTile; weightTile: Conv2dWeightTile }) {
    const { gpu } = ctx;
    const b = empty(gpu, 16);
    const sizes = { ...s, variant };
    if (CONV2D_FORWARD.unavailable(gpu, variant, s) === null) await checkForward(s, variant, t.tile);
    else expect(() => conv2d(gpu, b, b, null, b, { ...sizes, tile: t.tile })).toThrow(VariantError);
    if (CONV2D_BACKWARD_INPUT.unavailable(gpu, variant, s) === null) await checkBackwardInput(s, variant, t.tile);
    else expect(() => conv2dBackwardInput(gpu, b, b, b, { ...sizes, tile: t.tile })).toThrow(VariantError);
    if (CONV2D_BACKWARD_WEIGHT.unavailable(gpu, variant, s) === null) await checkBackwardWeight(s, variant, t.weightTile);
    else expect(() => conv2dBackwardWeight(gpu, b, b, b, { ...sizes, tile: t.weightTile })).toThrow(VariantError);
    gpu.pool.release(b);
  }

  // v2 tiles other than the defaults: channel and column tails, one-lane workgroups, many row slices. The shapes:
  // padded rows, and unpadded rows (v4 then compiles its kh bounds and Cin) at stride 2 and 1.
  const odd = SHAPES.filter((s) => ['odd k3x2 pad 2', 'stride 2 pad 1', 'stride 2', 'seed conv2, batch 3'].includes(s.label));
  const TILES: { tile: Conv2dTile; weightTile: Conv2dWeightTile }[] = [
    { tile: { OT: 3, PT: 5, WG: 16 }, weightTile: { OT: 3, PT: 3, WG: 4, groups: 512 } },
    { tile: { OT: 4, PT: 3, WG: 1 }, weightTile: { OT: 4, PT: 1, WG: 1, groups: 1 } },
  ];
  for (const s of odd) {
    for (const t of TILES)
      it(`${s.label} (v2 tile ${t.tile.OT}x${t.tile.PT}, weight tile ${t.weightTile.OT}x${t.weightTile.PT})`, () => checkTiles(s, 'v2', t));
  }

  // v4 tiles other than the defaults: several column-block classes with channel and column tails, one-column
  // blocks, several rows per lane (3: a row tail where the output height is not a multiple of 3, and padded
  // rows inside and outside the image in the same lane; 4: rows that slide on the seed's conv2, scalar loads,
  // 3 rows carried), and weight tiles with several steps per row (PT a multiple of the subgroup size, 8 on
  // llvmpipe). v4 ignores WG (a workgroup is one subgroup).
  const TILES_V4: { tile: Conv2dTile; weightTile: Conv2dWeightTile }[] = [
    { tile: { OT: 3, PT: 4, WG: 8 }, weightTile: { OT: 3, PT: 8, WG: 8, groups: 512 } },
    { tile: { OT: 4, PT: 1, WG: 8 }, weightTile: { OT: 4, PT: 16, WG: 8, groups: 1 } },
    { tile: { OT: 3, PT: 4, WG: 8, RT: 3 }, weightTile: { OT: 2, PT: 8, WG: 8, groups: 64 } },
    { tile: { OT: 3, PT: 4, WG: 8, RT: 4 }, weightTile: { OT: 2, PT: 8, WG: 8, groups: 64 } },
  ];
  for (const s of odd) {
    for (const t of TILES_V4)
      it(`${s.label} (v4 tile ${t.tile.OT}x${t.tile.PT}${t.tile.RT ? ` x${t.tile.RT} rows` : ''}, weight tile ${t.weightTile.OT}x${t.weightTile.PT})`, () =>
        checkTiles(s, 'v4', t));
  }

  // The image-lane backward-weight tile (IL) past the seed's layers, which test/kernels/fused.test.ts covers with
  // their bias: two input channels, one per workgroup or both (10 taps: a second group of sums, part of it past
  // the taps), a partial group of images, one slice (summing straight into dw) or one per unit; and its refusals,
  // naming the kernel.
  it('backward-weight with images on the lanes (IL): two input channels, a partial group of images', async () => {
    const s: Shape = { label: 'IL, 2 input channels', N: 11, C: 2, H: 8, W: 12, O: 3, KH: 1, KW: 5 };
    const il: Conv2dWeightTile = { OT: 0, PT: 8, WG: 0, groups: 1, RT: 4, IL: 1 };
    if (CONV2D_BACKWARD_WEIGHT.unavailable(ctx.gpu, 'v4', s) !== null) {
      const b = empty(ctx.gpu, 16);
      expect(() => conv2dBackwardWeight(ctx.gpu, b, b, b, { ...s, variant: 'v4', tile: il })).toThrow(VariantError);
      ctx.gpu.pool.release(b);
      return;
    }
    for (const t of [il, { ...il, groups: 512 }, { ...il, CT: 2 }]) await checkBackwardWeight(s, 'v4', t);
    const b = empty(ctx.gpu, 5000); // room for every operand below
    expect(() => conv2dBackwardWeight(ctx.gpu, b, b, b, { ...s, padding: 1, variant: 'v4', tile: il })).toThrow(
      /conv2d_bwd_weight_v4_il: the image-lane tile needs stride 1 and no padding/,
    );
    const conv2 = { N: 1, C: 10, H: 12, W: 12, O: 20, KH: 5, KW: 5, variant: 'v4' as const, tile: { ...il, CT: 10 } };
    expect(() => conv2dBackwardWeight(ctx.gpu, b, b, b, conv2)).toThrow(/conv2d_bwd_weight_v4_il: a patch of 960 input values/);
    ctx.gpu.pool.release(b);
  });

  // Every choice a tuner may make (variants × their tiles) at the seed's layers, a batch past one subgroup.
  for (const s of [
    { label: 'seed conv1, batch 9', N: 9, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5 },
    { label: 'seed conv2, batch 9', N: 9, C: 10, H: 12, W: 12, O: 20, KH: 5, KW: 5 },
  ]) {
    it(`${s.label}: every choice a tuner may make, forward and backward-input`, { timeout: 600_000 }, async () => {
      for (const c of runnableChoices(ctx.gpu, CONV2D_FORWARD, s)) await checkForward(s, c.variant, c.config as Conv2dTile | undefined);
      for (const c of runnableChoices(ctx.gpu, CONV2D_BACKWARD_INPUT, s))
        await checkBackwardInput(s, c.variant, c.config as Conv2dTile | undefined);
    });
  }
  // backward-weight's choices: test/kernels/fused.test.ts (with the bias gradient they compute).

  it('rejects a kernel larger than the padded input', () => {
    const { gpu } = ctx;
    const b = empty(gpu, 16);
    expect(() => conv2d(gpu, b, b, null, b, { N: 1, C: 1, H: 3, W: 3, O: 1, KH: 5, KW: 5 })).toThrow(/conv2d: bad sizes/);
    gpu.pool.release(b);
  });

  it('rejects a variant the op does not have, naming the op', () => {
    const { gpu } = ctx;
    const b = empty(gpu, 16);
    const force = (variant: string) => ({ N: 1, O: 1, OH: 1, OW: 1, variant: variant as Conv2dBiasVariant });
    expect(() => conv2dBackwardBias(gpu, b, b, force('v4'))).toThrow(/conv2d.backward-bias has no variant "v4"/);
    expect(() => conv2d(gpu, b, b, null, b, { N: 1, C: 1, H: 1, W: 1, O: 1, KH: 1, KW: 1, variant: 'v5' as Conv2dVariant })).toThrow(
      VariantError,
    );
    gpu.pool.release(b);
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
