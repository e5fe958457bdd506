// conv2dMaxPool2dRelu, relu(max_pool2d(conv2d(x), 2)) in one op: every choice a tuner may make against the
// float64 reference chain, and against the unfused kernels (conv2d, then maxPool2d with relu) bit for bit,
// argmax included (or the window codes saved instead, by the argmax they stand for): on random data, on ties
// (every window equal), on windows the ReLU zeroes, and with NaNs; and the autograd op against
// F.relu(F.maxPool2d(F.conv2d(...))) in value and gradients, with the argmax and with window codes.
import { describe, expect, it } from 'vitest';
import { ShapeError, UsageError, VariantError } from '../../src/errors.js';
import { orderedAtomics, unitWorkgroups } from '../../src/gpu/capabilities.js';
import * as F from '../../src/nn/ops.js';
import { setDefaultGpu } from '../../src/nn/tensor.js';
import { imageLanesTile, imageLanesTiles, lastSliceSums } from '../../src/shaders/conv2d/backward-weight-patch.js';
import {
  CONV2D_POOL_RELU,
  CONV2D_POOL_RELU_BACKWARD_INPUT,
  CONV2D_POOL_RELU_BACKWARD_WEIGHT,
  type Conv2dPoolReluSizes,
  type Conv2dTile,
  type Conv2dWeightTile,
  conv2d,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dMaxPool2dRelu,
  conv2dOutputSize,
  conv2dPoolReluBackwardInput,
  conv2dPoolReluBackwardWeight,
  poolCodesUseful,
} from '../../src/shaders/conv2d/index.js';
import { maxPool2d, poolCodes } from '../../src/shaders/pool.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, downloadI32, downloadU32, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableChoices } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

type Shape = Omit<Conv2dPoolReluSizes, 'variant' | 'tile'> & { label: string };
const SHAPES: Shape[] = [
  { label: 'seed conv1, batch 9', N: 9, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5 },
  { label: 'seed conv2, batch 3', N: 3, C: 10, H: 12, W: 12, O: 20, KH: 5, KW: 5 },
  { label: 'odd output (floor)', N: 2, C: 3, H: 9, W: 11, O: 5, KH: 3, KW: 3 },
  { label: 'stride 2 pad 1', N: 3, C: 2, H: 11, W: 11, O: 3, KH: 3, KW: 3, stride: 2, padding: 1 },
  { label: 'wide C, odd O, pad 1', N: 2, C: 33, H: 10, W: 10, O: 17, KH: 3, KW: 3, padding: 1 },
  // whole windows of 16 images (two): the patch tile reading x as uniform windows is offered too
  { label: 'seed conv1, batch 32', N: 32, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5 },
];

interface Result {
  y: Float32Array;
  argmax: Int32Array;
}

const pooledSize = (s: Shape) => {
  const { OH, OW } = conv2dOutputSize(s);
  return s.N * s.O * Math.floor(OH / 2) * Math.floor(OW / 2);
};

/** Whether the pooled output's rows are whole words of window codes (pool.ts), so the op can save codes. */
function codesFit(s: Omit<Shape, 'label'>): boolean {
  const { OH, OW } = conv2dOutputSize(s);
  return poolCodes({ N: s.N, C: s.O, H: OH, W: OW }) === null;
}

/** The fused op's y and argmax; with `codes`, it saves window codes instead, read back as the argmax they stand for. */
async function fused(
  s: Shape,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  variant: 'v1' | 'v4',
  tile?: Conv2dTile,
  codes = false,
): Promise<Result> {
  const { gpu } = ctx;
  const np = pooledSize(s);
  // (codes over a word pattern no code has, so a word left unwritten cannot pass)
  const [xb, wb, bb, yb] = [upload(gpu, x), upload(gpu, w), upload(gpu, b), empty(gpu, np)];
  const ab = codes ? upload(gpu, new Uint32Array(np / 4).fill(0xabababab)) : empty(gpu, np);
  try {
    conv2dMaxPool2dRelu(gpu, xb, wb, bb, yb, codes ? null : ab, { ...s, variant, tile }, codes ? ab : null);
    const { OH, OW } = conv2dOutputSize(s);
    const argmax = codes
      ? ref.argmaxOfCodes(await downloadU32(gpu, ab, np / 4), { N: s.N, C: s.O, H: OH, W: OW })
      : await downloadI32(gpu, ab, np);
    return { y: await download(gpu, yb, np), argmax };
  } finally {
    for (const buf of [xb, wb, bb, yb, ab]) gpu.pool.release(buf);
  }
}

/** The unfused kernels: conv2d (v4 where it runs, the variant the fused v4 sums like), then maxPool2d with relu. */
async function unfused(s: Shape, x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>): Promise<Result> {
  const { gpu } = ctx;
  const { OH, OW } = conv2dOutputSize(s);
  const nc = s.N * s.O * OH * OW;
  const np = pooledSize(s);
  const [xb, wb, bb, cb, yb, ab] = [upload(gpu, x), upload(gpu, w), upload(gpu, b), empty(gpu, nc), empty(gpu, np), empty(gpu, np)];
  const v4 = CONV2D_POOL_RELU.unavailable(gpu, 'v4', s) === null;
  conv2d(gpu, xb, wb, bb, cb, { ...s, variant: v4 ? 'v4' : undefined });
  maxPool2d(gpu, cb, yb, ab, { N: s.N, C: s.O, H: OH, W: OW, relu: true });
  const r: Result = { y: await download(gpu, yb, np), argmax: await downloadI32(gpu, ab, np) };
  for (const buf of [xb, wb, bb, cb, yb, ab]) gpu.pool.release(buf);
  return r;
}

/** Bit for bit: the same floats (NaNs by their bits) and the same argmax. */
function expectSame(got: Result, want: Result, label: string) {
  const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  expect(Array.from(bits(got.y)), `${label}: y`).toEqual(Array.from(bits(want.y)));
  expect(Array.from(got.argmax), `${label}: argmax`).toEqual(Array.from(want.argmax));
}

const inputs = (s: Shape, seed: number) => ({
  x: Float64Array.from(randomArray(s.N * s.C * s.H * s.W, seed), Math.fround),
  w: Float64Array.from(randomArray(s.O * s.C * s.KH * s.KW, seed + 1), Math.fround),
  b: Float64Array.from(randomArray(s.O, seed + 2, -0.3, 0.3), Math.fround),
});

/** The float64 reference of the fused op's y: relu(max_pool2d(conv2d(x, w, b), 2)). */
function pooledReference(s: Shape, x: Float64Array, w: Float64Array, b: Float64Array): Float64Array {
  const { OH, OW } = conv2dOutputSize(s);
  return ref.relu(ref.maxPool2d(ref.conv2d(x, w, b, s), { N: s.N, C: s.O, H: OH, W: OW }).y);
}

/** The patch tile on the seed's conv1: all ten channels a workgroup, 4×8 outputs a lane. */
const SEED_PATCH_TILE: Conv2dTile = { OT: 10, PT: 8, WG: 0, RT: 4, VX: 1, OL: 1 };

describe('conv2dMaxPool2dRelu', () => {
  for (const s of SHAPES) {
    it(`${s.label}: every choice a tuner may make, saving the argmax${codesFit(s) ? ' or window codes' : ''}, against the float64 chain and the unfused kernels`, {
      timeout: 300_000,
    }, async () => {
      const { x, w, b } = inputs(s, s.N * 100 + s.C);
      const { OH, OW } = conv2dOutputSize(s);
      const conv = ref.conv2d(x, w, b, s);
      const pooled = ref.maxPool2d(conv, { N: s.N, C: s.O, H: OH, W: OW });
      const want = ref.relu(pooled.y);
      const plain = await unfused(s, x, w, b);
      const choices = runnableChoices(ctx.gpu, CONV2D_POOL_RELU, s);
      for (const c of choices) {
        for (const codes of codesFit(s) ? [false, true] : [false]) {
          const label = `${s.label} ${c.variant}${c.config ? ` ${JSON.stringify(c.config)}` : ''}${codes ? ' codes' : ''}`;
          const got = await fused(s, x, w, b, c.variant, c.config as Conv2dTile | undefined, codes);
          expectClose(got.y, want, { label, atol: 2e-6 * Math.sqrt(s.C * s.KH * s.KW * 50), rtol: 1e-5 });
          expectSame(got, plain, label);
        }
      }
      // the reference's argmax where its maximum is clear of the window's runner-up, and −1 where the ReLU cut it
      let checked = 0;
      for (let i = 0; i < want.length; i++) {
        if (pooled.y[i] < -1e-4) expect(plain.argmax[i], `${s.label} argmax[${i}] of a cut window`).toBe(-1);
        else if (pooled.y[i] > 1e-4 && clearMaximum(conv, OH, OW, i)) {
          expect(plain.argmax[i], `${s.label} argmax[${i}]`).toBe(pooled.argmax[i]);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(want.length / 4);
    });
  }

  // Tiles past the tuner's: 4 rows per lane, two window rows each, on the seed's conv2 (8 rows: whole row blocks,
  // so the rows slide; vec4 and scalar loads) and on a 6-row output (the last block's second window row lies past
  // it; no sliding).
  // On llvmpipe the v4 kernels launch one workgroup a thread, taking the grid's cells from a counter in the ticket
  // buffer (takeCells in wgsl.ts): the same sums as a workgroup for each cell, for any number of workgroups,
  // also when run again (the last workgroup sets the counters back to zero), and with window codes.
  it('v4 with its workgroups taking the cells from a counter: each workgroup its own cell, bit for bit, run after run', async () => {
    const { gpu } = ctx;
    if (!orderedAtomics(gpu)) {
      expect(unitWorkgroups(gpu)).toBe(0);
      return;
    }
    expect(unitWorkgroups(gpu)).toBeGreaterThan(0);
    // the seed's conv2 (batch 3) with the direct tile, its conv1 (batch 9) with the patch tile, walking columns too
    for (const [s, tile] of [
      [SHAPES[1], { OT: 5, PT: 8, WG: 0, VX: 1, RT: 2 }],
      [SHAPES[0], SEED_PATCH_TILE],
      [SHAPES[0], { ...SEED_PATCH_TILE, SL: 3 }],
    ] as const) {
      const { x, w, b } = inputs(s, 41);
      const cells = await fused(s, x, w, b, 'v4', { ...tile, DU: 0 }, true);
      for (const DU of [1, 2, 5, 64])
        for (const run of [1, 2])
          expectSame(
            await fused(s, x, w, b, 'v4', { ...tile, DU }, true),
            cells,
            `${s.label} ${JSON.stringify(tile)}: ${DU} workgroups, run ${run}`,
          );
    }
  });

  it('4 rows per lane: two window rows, with and without sliding rows', async () => {
    const cases: [Shape, Conv2dTile][] = [
      [SHAPES[1], { OT: 3, PT: 4, WG: 0, RT: 4, VX: 1 }],
      [SHAPES[1], { OT: 5, PT: 8, WG: 0, RT: 4 }],
      [
        { label: '6x6 output', N: 9, C: 2, H: 8, W: 8, O: 3, KH: 3, KW: 3 },
        { OT: 2, PT: 2, WG: 0, RT: 4 },
      ],
    ];
    for (const [s, tile] of cases) {
      const label = `${s.label} ${JSON.stringify(tile)}`;
      const { x, w, b } = inputs(s, 5);
      if (CONV2D_POOL_RELU.unavailable(ctx.gpu, 'v4', s) !== null) {
        await expect(fused(s, x, w, b, 'v4', tile), label).rejects.toThrow(VariantError);
        continue;
      }
      const want = pooledReference(s, x, w, b);
      const got = await fused(s, x, w, b, 'v4', tile);
      expectClose(got.y, want, { label, atol: 2e-6 * Math.sqrt(s.C * s.KH * s.KW * 50), rtol: 1e-5 });
      expectSame(got, await unfused(s, x, w, b), label);
    }
  });

  // The patch tile (a lane's whole input patch loaded once, a loop over the output channels) past the seed's
  // conv1, which the tuner's choices cover: two input channels, a channel tail (3 channels, 2 per workgroup), two
  // row blocks and a partial subgroup of images; and its refusals, naming the kernel.
  it('the patch tile: two input channels and a channel tail, and where it cannot run', async () => {
    const s: Shape = { label: 'patch, 2 input channels', N: 5, C: 2, H: 8, W: 12, O: 3, KH: 1, KW: 5 };
    const tile: Conv2dTile = { OT: 2, PT: 8, WG: 0, RT: 4, VX: 1, OL: 1 };
    const { x, w, b } = inputs(s, 13);
    if (CONV2D_POOL_RELU.unavailable(ctx.gpu, 'v4', s) !== null) {
      await expect(fused(s, x, w, b, 'v4', tile)).rejects.toThrow(VariantError);
      return;
    }
    const want = pooledReference(s, x, w, b);
    const got = await fused(s, x, w, b, 'v4', tile);
    expectClose(got.y, want, { label: s.label, atol: 1e-5, rtol: 1e-5 });
    expectSame(got, await unfused(s, x, w, b), s.label);
    const seed2 = { ...SHAPES[1], N: 1 };
    const i2 = inputs(seed2, 3);
    await expect(fused(seed2, i2.x, i2.w, i2.b, 'v4', { ...tile, OT: 20 })).rejects.toThrow(
      /conv2d_v4_patch_pool_relu: a patch of 960 input values is more than a lane holds \(128\)/,
    );
    const padded = { ...s, padding: 1 };
    await expect(fused(padded, x, w, b, 'v4', tile)).rejects.toThrow(
      /conv2d_v4_patch_pool_relu: the patch tile needs stride 1 and no padding/,
    );
  });

  // x read as uniform windows: four windows of 8 images (the tuner offers the most a window holds, 16 on the
  // seed's conv1), bit for bit the tile reading the storage buffer; refused where the batch is not whole windows.
  it('the patch tile reading x as uniform windows: as the storage-buffer tile, bit for bit, and where it cannot run', async () => {
    const s: Shape = { ...SHAPES[0], label: 'seed conv1, batch 32', N: 32 };
    const tile = SEED_PATCH_TILE;
    const { x, w, b } = inputs(s, 29);
    if (CONV2D_POOL_RELU.unavailable(ctx.gpu, 'v4', s) !== null) {
      await expect(fused(s, x, w, b, 'v4', { ...tile, UW: 8 })).rejects.toThrow(VariantError);
      return;
    }
    const plain = await fused(s, x, w, b, 'v4', tile);
    expectSame(await fused(s, x, w, b, 'v4', { ...tile, UW: 8 }), plain, `${s.label} UW 8`);
    expectSame(await fused(s, x, w, b, 'v4', { ...tile, UW: 16 }), plain, `${s.label} UW 16`);
    const want = pooledReference(s, x, w, b);
    expectClose(plain.y, want, { label: s.label, atol: 1e-5, rtol: 1e-5 });
    // x of the caller's without UNIFORM usage: the tile reads it as a storage buffer, the same results
    const { gpu } = ctx;
    const np = pooledSize(s);
    const xs = gpu.device.createBuffer({
      size: 4 * x.length,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      label: 'x, storage only',
    });
    gpu.write(xs, Float32Array.from(x));
    const [wb, bb, yb, ab] = [upload(gpu, w), upload(gpu, b), empty(gpu, np), empty(gpu, np)];
    conv2dMaxPool2dRelu(gpu, xs, wb, bb, yb, ab, { ...s, variant: 'v4', tile: { ...tile, UW: 16 } });
    expectSame(
      { y: await download(gpu, yb, np), argmax: await downloadI32(gpu, ab, np) },
      plain,
      `${s.label} UW 16, x without UNIFORM usage`,
    );
    xs.destroy();
    for (const buf of [wb, bb, yb, ab]) gpu.pool.release(buf);
    const nine = { ...s, N: 9 };
    const i9 = inputs(nine, 31);
    await expect(fused(nine, i9.x, i9.w, i9.b, 'v4', { ...tile, UW: 8 })).rejects.toThrow(
      /conv2d_v4_patch_pool_relu: a batch of 9 is not whole windows of 8 images/,
    );
    await expect(fused(s, x, w, b, 'v4', { ...tile, UW: 6 })).rejects.toThrow(/a window of 6 images is not whole subgroups of \d+/);
  });

  // A workgroup walking SL row blocks down a column (its patch sliding) sums the same values in the same order as
  // one block a workgroup: bit for bit, from the storage buffer and from uniform windows, with a partial subgroup
  // of images; refused where the blocks are not whole walks.
  it('the patch tile walking row blocks down a column: as one block a workgroup, bit for bit, and where it cannot run', async () => {
    const s: Shape = { ...SHAPES[0], label: 'seed conv1, batch 21', N: 21 };
    const tile = SEED_PATCH_TILE;
    const { x, w, b } = inputs(s, 37);
    if (CONV2D_POOL_RELU.unavailable(ctx.gpu, 'v4', s) !== null) {
      await expect(fused(s, x, w, b, 'v4', { ...tile, SL: 2 })).rejects.toThrow(VariantError);
      return;
    }
    const plain = await fused(s, x, w, b, 'v4', tile);
    for (const SL of [2, 3, 6]) expectSame(await fused(s, x, w, b, 'v4', { ...tile, SL }), plain, `${s.label} SL ${SL}`);
    if (codesFit(s))
      expectSame(
        await fused(s, x, w, b, 'v4', { ...tile, SL: 6 }, true),
        await fused(s, x, w, b, 'v4', tile, true),
        `${s.label} SL 6, codes`,
      );
    const want = pooledReference(s, x, w, b);
    expectClose(plain.y, want, { label: s.label, atol: 1e-5, rtol: 1e-5 });
    const s32: Shape = { ...s, label: 'seed conv1, batch 32', N: 32 };
    const i32 = inputs(s32, 41);
    expectSame(
      await fused(s32, i32.x, i32.w, i32.b, 'v4', { ...tile, UW: 16, SL: 3 }),
      await fused(s32, i32.x, i32.w, i32.b, 'v4', tile),
      `${s32.label} UW 16 SL 3`,
    );
    await expect(fused(s, x, w, b, 'v4', { ...tile, SL: 4 })).rejects.toThrow(
      /conv2d_v4_patch_pool_relu: 6 blocks of 4 output rows are not whole walks of 4 blocks/,
    );
  });

  /** Whether pooled output i's window maximum exceeds its other values by more than float32 sums can blur. */
  function clearMaximum(conv: Float64Array, OH: number, OW: number, i: number): boolean {
    const PW = Math.floor(OW / 2);
    const PH = Math.floor(OH / 2);
    const plane = Math.floor(i / (PH * PW));
    const oh = 2 * Math.floor((i % (PH * PW)) / PW);
    const ow = 2 * (i % PW);
    const v = [0, 1, OW, OW + 1].map((d) => conv[plane * OH * OW + oh * OW + ow + d]).sort((a, b) => b - a);
    return v[0] - v[1] > 1e-4;
  }

  it('ties, windows the ReLU zeroes, and NaNs: the same values and argmax as the unfused kernels', async () => {
    for (const s of [SHAPES[0], SHAPES[1]]) {
      const { x, w } = inputs(s, 7);
      const zeros = new Float64Array(w.length);
      const cases: [string, ArrayLike<number>, ArrayLike<number>, ArrayLike<number>][] = [
        ['every window a tie', x, zeros, new Float64Array(s.O).fill(0.5)], // the first of each window wins
        ['every window cut by the ReLU', x, zeros, new Float64Array(s.O).fill(-0.5)],
        ['a cut window at exactly 0', x, zeros, new Float64Array(s.O)],
        ['NaNs', Float64Array.from(x, (v, i) => (i % 97 === 5 ? Number.NaN : v)), w, new Float64Array(s.O).fill(0.1)],
      ];
      for (const [what, xs, ws, bs] of cases) {
        const plain = await unfused(s, xs, ws, bs);
        for (const c of runnableChoices(ctx.gpu, CONV2D_POOL_RELU, s))
          for (const codes of [false, true])
            expectSame(
              await fused(s, xs, ws, bs, c.variant, c.config as Conv2dTile | undefined, codes),
              plain,
              `${s.label}, ${what}, ${c.variant}${codes ? ' codes' : ''}`,
            );
        if (what === 'every window a tie') expect(plain.argmax[1]).toBe(2); // window 1's first element: column 2 of row 0
        if (what.startsWith('every window cut') || what.startsWith('a cut')) expect(new Set(plain.argmax)).toEqual(new Set([-1]));
        if (what === 'NaNs') expect(plain.y.some(Number.isNaN)).toBe(true);
      }
    }
  });

  it('rejects outputs too small to pool, a v4 forced on an odd output, and the argmax and codes both or neither, naming the op', () => {
    const { gpu } = ctx;
    const b = empty(gpu, 16);
    const seed = { N: 1, C: 1, H: 28, W: 28, O: 1, KH: 5, KW: 5 };
    expect(() => conv2dMaxPool2dRelu(gpu, b, b, null, b, b, seed, b)).toThrow(UsageError);
    expect(() => conv2dMaxPool2dRelu(gpu, b, b, null, b, null, seed)).toThrow(
      /conv2dMaxPool2dRelu: pass the pool's argmax or its window codes \(neither was given\)/,
    );
    expect(() => conv2dPoolReluBackwardWeight(gpu, { x: b, dy: b, argmax: b, codes: b, dconv: null, dw: b, db: null }, seed)).toThrow(
      /conv2dPoolReluBackwardWeight: pass the pool's argmax or its window codes \(not both\)/,
    );
    // pooled rows of 5 outputs: no codes
    expect(() => conv2dMaxPool2dRelu(gpu, b, b, null, b, null, { ...seed, H: 14, W: 14 }, b)).toThrow(
      /conv2dMaxPool2dRelu: pooled rows of 5 outputs are not whole words of four codes; pass the argmax instead/,
    );
    expect(() => conv2dMaxPool2dRelu(gpu, b, b, null, b, b, { N: 1, C: 1, H: 5, W: 5, O: 1, KH: 5, KW: 5 })).toThrow(ShapeError);
    expect(() => conv2dMaxPool2dRelu(gpu, b, b, null, b, b, { N: 1, C: 1, H: 5, W: 5, O: 1, KH: 5, KW: 5 })).toThrow(
      /conv2dMaxPool2dRelu: the convolution's 1x1 output is smaller than the 2x2 pooling window/,
    );
    const odd = { N: 1, C: 1, H: 7, W: 7, O: 1, KH: 3, KW: 3, variant: 'v4' as const };
    if (CONV2D_POOL_RELU.unavailable(gpu, 'v4', { ...odd, H: 8, W: 8 }) === null)
      expect(() => conv2dMaxPool2dRelu(gpu, b, b, null, b, b, odd)).toThrow(VariantError);
    gpu.pool.release(b);
  });

  // The weight gradient from the pooled gradient and the argmax (conv2d.pool-relu.backward-weight): every choice
  // a tuner may make against the float64 chain (max_pool2d's backward, then conv2d's), with and without the
  // scattered gradient given; the image-lane tile reading dy and argmax bit for bit as the same tile reading the
  // scattered gradient; its accumulation; and where it cannot run.
  describe('conv2dPoolReluBackwardWeight', () => {
    async function weightGrads(
      s: Shape,
      x: ArrayLike<number>,
      dy: ArrayLike<number>,
      argmax: Int32Array,
      dconv: ArrayLike<number> | null,
      opts: { variant?: 'v1' | 'v4'; tile?: Conv2dWeightTile; accumulate?: boolean; codes?: boolean } = {},
    ) {
      const { gpu } = ctx;
      const nw = s.O * s.C * s.KH * s.KW;
      const init = opts.accumulate ? 1 : 0;
      const { OH, OW } = conv2dOutputSize(s);
      const { codes, ...rest } = opts;
      const bufs = {
        x: upload(gpu, x),
        dy: upload(gpu, dy),
        // the argmax, or the window codes that stand for it
        argmax: codes ? null : upload(gpu, argmax),
        codes: codes ? upload(gpu, ref.poolCodes(argmax, { N: s.N, C: s.O, H: OH, W: OW })) : null,
        dconv: dconv ? upload(gpu, dconv) : null,
        dw: upload(gpu, new Float32Array(nw).fill(init)),
        db: upload(gpu, new Float32Array(s.O).fill(init)),
      };
      try {
        const { label: _, ...sizes } = s;
        conv2dPoolReluBackwardWeight(gpu, bufs, { ...sizes, ...rest });
        return { dw: await download(gpu, bufs.dw, nw), db: await download(gpu, bufs.db, s.O) };
      } finally {
        for (const b of Object.values(bufs)) if (b) gpu.pool.release(b);
      }
    }

    /** The argmax of the forward (conv2dMaxPool2dRelu, the heuristics' choice) and a random pooled gradient. */
    async function pooledCase(s: Shape, seed: number) {
      const { x, w, b } = inputs(s, seed);
      const { argmax } = await fused(s, x, w, b, CONV2D_POOL_RELU.resolve(ctx.gpu, s));
      const dy = Float64Array.from(randomArray(argmax.length, seed + 3), Math.fround);
      const { OH, OW } = conv2dOutputSize(s);
      const dconv = ref.maxPool2dBackward(dy, argmax, { N: s.N, C: s.O, H: OH, W: OW });
      return { x, w, dy, argmax, dconv, want: ref.conv2dBackward(x, w, dconv, s) };
    }

    for (const s of SHAPES) {
      it(`${s.label}: every choice a tuner may make, from dy or the scattered gradient, against the float64 chain`, {
        timeout: 300_000,
      }, async () => {
        const { x, dy, argmax, dconv, want } = await pooledCase(s, s.N * 10 + s.O);
        expect(argmax.some((a) => a < 0) && argmax.some((a) => a >= 0), `${s.label}: cut and kept windows`).toBe(true);
        const tol = { atol: 2e-6 * Math.sqrt(s.N * 50), rtol: 1e-5 };
        for (const scattered of [false, true]) {
          const sizes = { ...s, scattered };
          for (const c of runnableChoices(ctx.gpu, CONV2D_POOL_RELU_BACKWARD_WEIGHT, sizes)) {
            for (const codes of codesFit(s) ? [false, true] : [false]) {
              const label = `${s.label} ${scattered ? 'scattered ' : ''}${c.variant}${c.config ? ` ${JSON.stringify(c.config)}` : ''}${codes ? ' codes' : ''}`;
              const got = await weightGrads(s, x, dy, argmax, scattered ? dconv : null, {
                variant: c.variant,
                tile: c.config as Conv2dWeightTile | undefined,
                codes,
              });
              expectClose(got.dw, want.dw, { label: `${label} dw`, ...tol });
              expectClose(got.db, want.db, { label: `${label} db`, ...tol });
            }
          }
        }
      });
    }

    it('the image-lane tile: dy and argmax (or codes) read as the same tile reads the scattered gradient, bit for bit (with AM too); accumulating', async () => {
      const { gpu } = ctx;
      for (const s of [SHAPES[0], SHAPES[1], SHAPES[5]]) {
        if (CONV2D_POOL_RELU_BACKWARD_WEIGHT.unavailable(gpu, 'v4', { ...s, scattered: false }) !== null) continue;
        const { x, dy, argmax, dconv, want } = await pooledCase(s, 21);
        for (const c of runnableChoices(gpu, CONV2D_POOL_RELU_BACKWARD_WEIGHT, { ...s, scattered: false }).filter(
          (c) => c.variant === 'v4',
        )) {
          const tile = c.config as Conv2dWeightTile;
          const label = `${s.label} ${JSON.stringify(tile)}`;
          const got = await weightGrads(s, x, dy, argmax, null, { variant: 'v4', tile });
          // from the window codes: the same sums, bit for bit (and without AM, reading each position's dy from them)
          for (const t of [tile, { ...tile, AM: undefined }]) {
            const [fromArgmax, fromCodes] = [
              t === tile ? got : await weightGrads(s, x, dy, argmax, null, { variant: 'v4', tile: t }),
              await weightGrads(s, x, dy, argmax, null, { variant: 'v4', tile: t, codes: true }),
            ];
            expectClose(fromCodes.dw, fromArgmax.dw, { label: `${label} dw from codes${t.AM ? '' : ', no AM'}`, atol: 0, rtol: 0 });
            expectClose(fromCodes.db, fromArgmax.db, { label: `${label} db from codes${t.AM ? '' : ', no AM'}`, atol: 0, rtol: 0 });
          }
          if (tile.LS) {
            // the slices' sums added up by the last workgroup: those of the second pass (conv2d_sum_partials), bit
            // for bit, also when adding to dw and db
            for (const accumulate of [false, true]) {
              const [last, twoPass] = [
                accumulate ? await weightGrads(s, x, dy, argmax, null, { variant: 'v4', tile, accumulate }) : got,
                await weightGrads(s, x, dy, argmax, null, { variant: 'v4', tile: { ...tile, LS: undefined }, accumulate }),
              ];
              const how = `${label}${accumulate ? ' accumulated' : ''}, against two passes`;
              expectClose(last.dw, twoPass.dw, { label: `${how} dw`, atol: 0, rtol: 0 });
              expectClose(last.db, twoPass.db, { label: `${how} db`, atol: 0, rtol: 0 });
            }
          }
          if (tile.UW) {
            // x read as uniform windows: the sums of the tile reading the storage buffer, bit for bit
            const stored = await weightGrads(s, x, dy, argmax, null, { variant: 'v4', tile: { ...tile, UW: undefined } });
            expectClose(got.dw, stored.dw, { label: `${label} dw, against x as storage`, atol: 0, rtol: 0 });
            expectClose(got.db, stored.db, { label: `${label} db, against x as storage`, atol: 0, rtol: 0 });
          }
          // the same tile on the scattered gradient, through conv2d.backward-weight
          const nw = s.O * s.C * s.KH * s.KW;
          const [xb, cb, wb, bb] = [upload(gpu, x), upload(gpu, dconv), empty(gpu, nw), empty(gpu, s.O)];
          const { label: _, ...sizes } = s;
          // (AM, a window's value at its maximum only, needs the pooled gradient: the tile without it, the same sums)
          conv2dBackwardWeight(gpu, xb, cb, wb, { ...sizes, variant: 'v4', tile: { ...tile, AM: undefined } }, bb);
          const plain = { dw: await download(gpu, wb, nw), db: await download(gpu, bb, s.O) };
          for (const b of [xb, cb, wb, bb]) gpu.pool.release(b);
          expectClose(got.dw, plain.dw, { label: `${label} dw`, atol: 0, rtol: 0 });
          expectClose(got.db, plain.db, { label: `${label} db`, atol: 0, rtol: 0 });
          const more = await weightGrads(s, x, dy, argmax, null, { variant: 'v4', tile, accumulate: true });
          expectClose(
            more.dw,
            Float64Array.from(want.dw, (v) => v + 1),
            { label: `${label} accumulated dw`, atol: 2e-6 * Math.sqrt(s.N * 50), rtol: 1e-5 },
          );
          expectClose(
            more.db,
            Float64Array.from(want.db, (v) => v + 1),
            { label: `${label} accumulated db`, atol: 2e-6 * Math.sqrt(s.N * 50), rtol: 1e-5 },
          );
        }
      }
    });

    it('where the image-lane tile cannot run: refused when forced, naming the op', async () => {
      const { gpu } = ctx;
      const strided = SHAPES[3];
      expect(CONV2D_POOL_RELU_BACKWARD_WEIGHT.unavailable(gpu, 'v4', { ...strided, scattered: false })).toMatch(
        /stride 1 and no padding|subgroups/,
      );
      const { x, dy, argmax } = await pooledCase(strided, 5);
      await expect(weightGrads(strided, x, dy, argmax, null, { variant: 'v4' })).rejects.toThrow(
        /conv2d\.pool-relu\.backward-weight variant v4 cannot run here/,
      );
      // pooled rows of 4 outputs in blocks of 8 positions: the seed's conv2 runs, a 6-wide output does not
      const narrow: Shape = { label: '6-wide output', N: 8, C: 1, H: 8, W: 10, O: 2, KH: 5, KW: 5 };
      if (CONV2D_POOL_RELU_BACKWARD_WEIGHT.unavailable(gpu, 'v4', { ...SHAPES[1], scattered: false }) === null)
        expect(CONV2D_POOL_RELU_BACKWARD_WEIGHT.unavailable(gpu, 'v4', { ...narrow, scattered: false })).toMatch(/blocks of 8|whole/);
      // the last workgroup adding up the slices (LS): on llvmpipe only, with a counter for each channel group
      const conv1 = { N: 64, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5, S: 1, pad: 0, OH: 24, OW: 24 };
      const tile = imageLanesTile(true);
      const adapter = (description: string) => ({ adapter: { ...gpu.adapter, description } });
      expect(lastSliceSums(adapter('llvmpipe (LLVM 15.0.6, 256 bits)'), conv1, tile)).toBeNull();
      expect(lastSliceSums(adapter('SwiftShader Device (Subzero)'), conv1, tile)).toMatch(/SwiftShader.*does not promise/);
      expect(lastSliceSums(adapter('llvmpipe'), { ...conv1, C: 8192 }, tile)).toMatch(/8192 channel groups.*4096 ticket counters/);
      const sg = 8;
      const offered = (description: string) =>
        imageLanesTiles(conv1, sg, true, { ...gpu, ...adapter(description) } as typeof gpu).map((t) => [t.groups, t.LS ?? 0]);
      // (the batch is whole uniform windows of 16 images: each tile also reading x from them)
      expect(offered('llvmpipe')).toEqual([
        [16, 1],
        [2, 1],
        [1, 0],
        [16, 1],
        [2, 1],
        [1, 0],
      ]);
      expect(offered('SwiftShader')).toEqual([
        [16, 0],
        [2, 0],
        [1, 0],
        [16, 0],
        [2, 0],
        [1, 0],
      ]);
    });
  });

  // The input gradient from the pooled gradient (conv2d.pool-relu.backward-input): every choice a tuner may make
  // against the float64 chain, from the argmax and from window codes; v4 (codes only) bit for bit as
  // conv2d.backward-input's v4 with the same tile on the scattered gradient; and where it cannot run.
  describe('conv2dPoolReluBackwardInput', () => {
    async function inputGrad(
      s: Shape,
      w: ArrayLike<number>,
      dy: ArrayLike<number>,
      argmax: Int32Array,
      opts: { variant?: 'v1' | 'v4'; tile?: Conv2dTile; codes?: boolean } = {},
    ) {
      const { gpu } = ctx;
      const { OH, OW } = conv2dOutputSize(s);
      const nx = s.N * s.C * s.H * s.W;
      const { codes, ...rest } = opts;
      const bufs = {
        dy: upload(gpu, dy),
        argmax: codes ? null : upload(gpu, argmax),
        codes: codes ? upload(gpu, ref.poolCodes(argmax, { N: s.N, C: s.O, H: OH, W: OW })) : null,
        w: upload(gpu, w),
        dx: upload(gpu, new Float32Array(nx).fill(9)), // every element is written
      };
      try {
        const { label: _, ...sizes } = s;
        conv2dPoolReluBackwardInput(gpu, bufs, { ...sizes, ...rest });
        return await download(gpu, bufs.dx, nx);
      } finally {
        for (const b of Object.values(bufs)) if (b) gpu.pool.release(b);
      }
    }

    for (const s of SHAPES) {
      it(`${s.label}: every choice a tuner may make, from the argmax${codesFit(s) ? ' or window codes' : ''}, against the float64 chain`, {
        timeout: 300_000,
      }, async () => {
        const { x, w, b } = inputs(s, s.N * 7 + s.O);
        const { argmax } = await fused(s, x, w, b, CONV2D_POOL_RELU.resolve(ctx.gpu, s));
        const dy = Float64Array.from(randomArray(argmax.length, 5), Math.fround);
        const { OH, OW } = conv2dOutputSize(s);
        const dconv = ref.maxPool2dBackward(dy, argmax, { N: s.N, C: s.O, H: OH, W: OW });
        const want = ref.conv2dBackward(x, w, dconv, s).dx;
        const tol = { atol: 2e-6 * Math.sqrt(s.O * s.KH * s.KW * 50), rtol: 1e-5 };
        let v4 = 0;
        for (const codes of codesFit(s) ? [false, true] : [false]) {
          for (const c of runnableChoices(ctx.gpu, CONV2D_POOL_RELU_BACKWARD_INPUT, { ...s, codes })) {
            const label = `${s.label} ${c.variant}${c.config ? ` ${JSON.stringify(c.config)}` : ''}${codes ? ' codes' : ''}`;
            const tile = c.config as Conv2dTile | undefined;
            const got = await inputGrad(s, w, dy, argmax, { variant: c.variant, tile, codes });
            expectClose(got, want, { label, ...tol });
            if (c.variant !== 'v4') continue;
            v4++;
            // the same tile on the scattered gradient, through conv2d.backward-input: bit for bit
            const { gpu } = ctx;
            const nx = s.N * s.C * s.H * s.W;
            const [cb, wb, xb] = [upload(gpu, dconv), upload(gpu, w), empty(gpu, nx)];
            const { label: _, ...sizes } = s;
            conv2dBackwardInput(gpu, cb, wb, xb, { ...sizes, variant: 'v4', tile });
            expectClose(got, await download(gpu, xb, nx), { label: `${label}, against the scattered gradient`, atol: 0, rtol: 0 });
            for (const buf of [cb, wb, xb]) gpu.pool.release(buf);
          }
        }
        // v4 where it can run: the seed's conv2 (rows of 8, one column block per output row) on llvmpipe
        if (s.label.startsWith('seed conv2') && CONV2D_POOL_RELU_BACKWARD_INPUT.unavailable(ctx.gpu, 'v4', { ...s, codes: true }) === null)
          expect(v4).toBeGreaterThan(0);
      });
    }

    it('where v4 cannot run, and the argmax and codes both or neither: refused, naming the op', async () => {
      const { gpu } = ctx;
      const s = SHAPES[1];
      expect(CONV2D_POOL_RELU_BACKWARD_INPUT.unavailable(gpu, 'v4', { ...s, codes: false })).toMatch(/reads window codes|subgroups/);
      // conv1's rows of 24 outputs: no tile takes a whole row in one column block
      expect(CONV2D_POOL_RELU_BACKWARD_INPUT.unavailable(gpu, 'v4', { ...SHAPES[0], codes: true })).toMatch(/column blocks|subgroups/);
      const b = empty(gpu, 64);
      const { label: _, ...sizes } = s;
      expect(() => conv2dPoolReluBackwardInput(gpu, { dy: b, argmax: null, codes: null, w: b, dx: b }, sizes)).toThrow(
        /conv2dPoolReluBackwardInput: pass the pool's argmax or its window codes \(neither was given\)/,
      );
      const { x, w, b: bias } = inputs(s, 3);
      const { argmax } = await fused(s, x, w, bias, 'v1');
      await expect(inputGrad(s, w, new Float64Array(argmax.length), argmax, { variant: 'v4' })).rejects.toThrow(
        /conv2d\.pool-relu\.backward-input variant v4 cannot run here: it reads window codes, not the argmax/,
      );
      gpu.pool.release(b);
    });
  });

  it('releases what it acquired (before the tensors of the autograd case below)', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });

  it('F.conv2dMaxPool2dRelu equals F.relu(F.maxPool2d(F.conv2d)) in value and gradients', async () => {
    setDefaultGpu(ctx.gpu);
    const s = SHAPES[1];
    const { x, w, b } = inputs(s, 11);
    /** The value and the gradients that exist (x's, w's, b's), with x and w requiring theirs as given. */
    async function run(isFused: boolean, xGrad: boolean, wGrad: boolean): Promise<Float32Array[]> {
      const xt = F.tensor(Float32Array.from(x), [s.N, s.C, s.H, s.W], { requiresGrad: xGrad });
      const wt = F.tensor(Float32Array.from(w), [s.O, s.C, s.KH, s.KW], { requiresGrad: wGrad });
      const bt = F.tensor(Float32Array.from(b), [s.O], { requiresGrad: true });
      const y = isFused ? F.conv2dMaxPool2dRelu(xt, wt, bt) : F.relu(F.maxPool2d(F.conv2d(xt, wt, bt)));
      F.sum(F.mul(y, y)).backward();
      expect([xt.grad, wt.grad].map((g) => g !== null)).toEqual([xGrad, wGrad]);
      const kept = [y, xt.grad, wt.grad, bt.grad].filter((t) => t !== null);
      return (await Promise.all(kept.map((t) => t.toArray()))) as Float32Array[];
    }
    // all gradients; an input without one (the seed's conv1: dw from dy and the argmax); a bias whose weight has none
    for (const [xGrad, wGrad, what] of [
      [true, true, ['value', 'dx', 'dw', 'db']],
      [false, true, ['value', 'dw', 'db']],
      [true, false, ['value', 'dx', 'db']],
    ] as const) {
      const [got, want] = [await run(true, xGrad, wGrad), await run(false, xGrad, wGrad)];
      for (const [i, label] of what.entries()) expectClose(got[i], want[i], { label, atol: 0, rtol: 0 });
    }
    expect(() => F.conv2dMaxPool2dRelu(F.tensor(new Float32Array(25), [1, 1, 5, 5]), F.tensor(new Float32Array(25), [1, 1, 5, 5]))).toThrow(
      /conv2dMaxPool2dRelu: window 2x2 is larger than the convolution's output \[1, 1, 1, 1\]/,
    );
  });

  // With a tuner attached (here a hook choosing the image-lane weight gradient, and the input gradient's v4 or its
  // fallback) the op saves window codes instead of the argmax: dx from the pooled gradient and the codes, dw and db
  // through the tile reading them.
  it('F.conv2dMaxPool2dRelu saving window codes, as under a tuner: the same value and gradients', async () => {
    const { gpu } = ctx;
    setDefaultGpu(gpu);
    const { label: _, ...s } = SHAPES[1];
    const { x, w, b } = inputs(SHAPES[1], 17);
    const asked: object[] = [];
    let input: object | undefined; // the input gradient's choice
    const hook = {
      choice: (op: { name: string }, sizes: object) => {
        if (op.name === CONV2D_POOL_RELU_BACKWARD_INPUT.name) {
          asked.push(sizes);
          return input as { variant: string } | undefined;
        }
        if (op.name !== CONV2D_POOL_RELU_BACKWARD_WEIGHT.name) return undefined;
        asked.push(sizes);
        return { variant: 'v4', config: imageLanesTile(true) };
      },
    };
    async function run(isFused: boolean): Promise<Float32Array[]> {
      const xt = F.tensor(Float32Array.from(x), [s.N, s.C, s.H, s.W], { requiresGrad: true });
      const wt = F.tensor(Float32Array.from(w), [s.O, s.C, s.KH, s.KW], { requiresGrad: true });
      const bt = F.tensor(Float32Array.from(b), [s.O], { requiresGrad: true });
      const y = isFused ? F.conv2dMaxPool2dRelu(xt, wt, bt) : F.relu(F.maxPool2d(F.conv2d(xt, wt, bt)));
      F.sum(F.mul(y, y)).backward();
      return (await Promise.all([y, xt.grad!, wt.grad!, bt.grad!].map((t) => t.toArray()))) as Float32Array[];
    }
    const want = await run(false);
    gpu.tuning = hook;
    try {
      if (CONV2D_POOL_RELU_BACKWARD_WEIGHT.unavailable(gpu, 'v4', { ...s, scattered: true, codes: true }) !== null) {
        expect(poolCodesUseful(gpu, s), 'no codes where nothing reads them').toBe(false);
        return;
      }
      expect(poolCodesUseful(gpu, s)).toBe(true);
      const v4 = CONV2D_POOL_RELU_BACKWARD_INPUT.choices(gpu, { ...s, codes: true }).find((c) => c.variant === 'v4');
      for (const choice of [undefined, v4]) {
        input = choice;
        asked.length = 0;
        const got = await run(true);
        expect(asked.filter((sizes) => 'codes' in sizes && sizes.codes === true)).toHaveLength(2);
        // the value and dx (the scatter and conv2d's backward-input, or v4 on the pooled gradient: the same sums) bit
        // for bit; dw and db summed in the tile's order
        const label = choice ? `dx, v4 ${JSON.stringify(choice.config)}` : 'dx, the fallback';
        expectClose(got[0], want[0], { label: 'value', atol: 0, rtol: 0 });
        expectClose(got[1], want[1], { label, atol: 0, rtol: 0 });
        expectClose(got[2], want[2], { label: 'dw', atol: 1e-4, rtol: 1e-5 });
        expectClose(got[3], want[3], { label: 'db', atol: 1e-4, rtol: 1e-5 });
      }
    } finally {
      gpu.tuning = null;
    }
  });
});
