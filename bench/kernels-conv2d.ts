// Benchmark entries for 2-D convolution: the seed's conv1 (1→10, k5, 28x28) and conv2 (10→20, k5, 12x12) at
// batch 64, forward, backward-input, backward-weight and backward-bias with the adapter's default variant,
// every variant of the forward, backward-input and backward-weight registries (those this adapter cannot run
// are skipped), the v2 register tiles behind conv2dTileV2 and conv2dWeightTileV2, every v4 backward-weight tile a
// tuner may time (conv2dWeightTilesV4, subgroups of 8), and one larger layer
// (32→64, k3, pad 1, 28x28); and the forward with its 2×2 max pool and ReLU fused (conv2dMaxPool2dRelu, as the
// seed's network runs its layers), with the adapter's choice and every variant and v4 tile; and the weight
// gradient behind that pool (conv2dPoolReluBackwardWeight, from the pooled gradient and the argmax, as the seed's
// conv1 runs it), with the adapter's choice and every variant and tile.
// Each entry validates against the float64 CPU reference (test/reference/conv2d.ts) before it is timed.
//
//   npm run build && npm run bench:kernels -- --filter conv
import type { Gpu } from '../src/gpu/runtime.js';
import { imageLanesTiles } from '../src/shaders/conv2d/backward-weight-patch.js';
import {
  CONV2D_BACKWARD_BIAS,
  CONV2D_BACKWARD_INPUT,
  CONV2D_BACKWARD_WEIGHT,
  CONV2D_FORWARD,
  CONV2D_POOL_RELU,
  CONV2D_POOL_RELU_BACKWARD_INPUT,
  CONV2D_POOL_RELU_BACKWARD_WEIGHT,
  type Conv2dPoolReluBackwardWeightVariant,
  type Conv2dPoolReluSizes,
  type Conv2dPoolReluVariant,
  type Conv2dSizes,
  type Conv2dTile,
  type Conv2dVariant,
  type Conv2dWeightTile,
  conv2d,
  conv2dBackwardBias,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dMaxPool2dRelu,
  conv2dOutputSize,
  conv2dPoolReluBackwardInput,
  conv2dPoolReluBackwardWeight,
  conv2dPoolTilesV4,
  conv2dTilesV4,
  conv2dWeightTilesV4,
  poolCodesUseful,
} from '../src/shaders/conv2d/index.js';
import { geometry } from '../src/shaders/conv2d/sizes.js';
import { maxPool2dBackward, maxPool2dBackwardCodes } from '../src/shaders/pool.js';
import { choiceLabel } from '../src/tune/tuner.js';
import { download, downloadI32, downloadU32, upload } from '../test/helpers/buffers.js';
import { expectClose, randomF32 } from '../test/helpers/compare.js';
import * as ref from '../test/reference/conv2d.js';
import {
  argmaxOfCodes as refArgmaxOfCodes,
  maxPool2d as refMaxPool2d,
  maxPool2dBackward as refMaxPool2dBackward,
} from '../test/reference/pool.js';
import { type BenchCase, type BenchEntry, BenchSkip } from './harness.js';

type Op =
  | 'forward'
  | 'forward-pool-relu'
  | 'backward-input'
  | 'pool-relu-backward-input'
  | 'backward-weight'
  | 'pool-relu-backward-weight'
  | 'backward-bias';
type Sizes = Conv2dSizes & { tile?: Conv2dTile | Conv2dWeightTile };

interface Layer {
  name: string;
  sizes: Conv2dSizes;
}
const CONV1: Layer = { name: 'conv1', sizes: { N: 64, C: 1, H: 28, W: 28, O: 10, KH: 5, KW: 5 } };
const CONV2: Layer = { name: 'conv2', sizes: { N: 64, C: 10, H: 12, W: 12, O: 20, KH: 5, KW: 5 } };
const BIG: Layer = { name: 'conv 32->64 k3', sizes: { N: 64, C: 32, H: 28, W: 28, O: 64, KH: 3, KW: 3, padding: 1 } };

const f64 = (a: Float32Array) => Float64Array.from(a);
const shapeOf = (s: Conv2dSizes) =>
  `${s.N}x${s.C}x${s.H}x${s.W} k${s.KH}${s.padding ? ` p${s.padding}` : ''}${(s.stride ?? 1) > 1 ? ` s${s.stride}` : ''} ->${s.O}`;

/** The sizes as the pooled forward takes them (its variants are v1 and v4: what entries force it to). */
const pooledSizes = (s: Sizes): Conv2dPoolReluSizes => ({
  ...s,
  variant: s.variant as Conv2dPoolReluVariant | undefined,
  tile: s.tile as Conv2dTile | undefined,
});

/**
 * The sizes as the weight gradient behind the pool takes them in the seed's network: conv1 from the pooled
 * gradient alone, conv2 with the scattered gradient given too (made for its dx), unless the network saves window
 * codes (then its dx reads the pooled gradient too: conv2dPoolReluBackwardInput).
 */
const poolWeightSizes = (s: Sizes, codes = false) => ({
  ...s,
  scattered: s.C > 1 && !codes,
  withBias: true,
  variant: s.variant as Conv2dPoolReluBackwardWeightVariant | undefined,
  tile: s.tile as Conv2dWeightTile | undefined,
});

/** The sizes as the input gradient behind the pool takes them (its variants are v1 and v4). */
const pooledInputSizes = (s: Sizes) => ({
  ...s,
  variant: s.variant as Conv2dPoolReluBackwardWeightVariant | undefined,
  tile: s.tile as Conv2dTile | undefined,
});

/**
 * The variant and tile the library runs for `op` on this adapter (the tuned one where the adapter's tuning cache
 * has it, see bench/kernels.ts), or the forced one; a VariantError where it cannot run.
 */
function describe(gpu: Gpu, op: Op, s: Sizes & { codes?: boolean }): string {
  const { OH, OW } = conv2dOutputSize(s);
  const choice =
    op === 'backward-bias'
      ? CONV2D_BACKWARD_BIAS.choose(gpu, { N: s.N, O: s.O, OH, OW })
      : op === 'backward-weight'
        ? CONV2D_BACKWARD_WEIGHT.choose(gpu, { ...(s as Conv2dSizes), withBias: true }, s.variant)
        : op === 'forward-pool-relu'
          ? CONV2D_POOL_RELU.choose(gpu, pooledSizes(s), pooledSizes(s).variant)
          : op === 'pool-relu-backward-weight'
            ? CONV2D_POOL_RELU_BACKWARD_WEIGHT.choose(gpu, poolWeightSizes(s, s.codes), poolWeightSizes(s).variant)
            : op === 'pool-relu-backward-input'
              ? CONV2D_POOL_RELU_BACKWARD_INPUT.choose(gpu, pooledInputSizes(s), pooledInputSizes(s).variant)
              : (op === 'backward-input' ? CONV2D_BACKWARD_INPUT : CONV2D_FORWARD).choose(gpu, s, s.variant);
  return choiceLabel({ variant: choice.variant, config: s.tile ?? choice.config });
}

// Validation: the CPU reference costs O(N·O·OH·OW·C·KH·KW) in JavaScript, so for large layers forward and
// backward-input are checked on the first images only, and backward-weight at sampled weights.
const MAX_REF_MACS = 2e8;

function entry(
  layer: Layer,
  op: Op,
  opts: { label?: string; variant?: Conv2dVariant; tile?: Conv2dTile | Conv2dWeightTile; samples?: number } = {},
): BenchEntry {
  const s: Sizes = { stride: 1, padding: 0, ...layer.sizes, variant: opts.variant, tile: opts.tile };
  const { N, C, H, W, O, KH, KW } = s;
  const { OH, OW } = conv2dOutputSize(s);
  const nx = N * C * H * W,
    nw = O * C * KH * KW,
    ny = N * O * OH * OW;
  const macs = ny * C * KH * KW;
  const cost =
    op === 'forward'
      ? CONV2D_FORWARD.cost(s)
      : op === 'forward-pool-relu'
        ? CONV2D_POOL_RELU.cost(pooledSizes(s))
        : op === 'backward-input'
          ? CONV2D_BACKWARD_INPUT.cost(s)
          : op === 'backward-weight'
            ? CONV2D_BACKWARD_WEIGHT.cost(layer.sizes)
            : op === 'pool-relu-backward-weight'
              ? CONV2D_POOL_RELU_BACKWARD_WEIGHT.cost(poolWeightSizes(s))
              : op === 'pool-relu-backward-input'
                ? CONV2D_POOL_RELU_BACKWARD_INPUT.cost(pooledInputSizes(s))
                : CONV2D_BACKWARD_BIAS.cost({ N, O, OH, OW });
  return {
    name: `${layer.name} ${op}${opts.label ? ` ${opts.label}` : ''}`,
    shape: shapeOf(s),
    cost,
    samples: opts.samples,
    setup(gpu): BenchCase {
      // behind the pool, window codes instead of the argmax where the seed's network saves them
      const pooledOp = op === 'forward-pool-relu' || op === 'pool-relu-backward-weight' || op === 'pool-relu-backward-input';
      const withCodes = pooledOp && poolCodesUseful(gpu, layer.sizes);
      let detail: string;
      try {
        detail = describe(gpu, op, withCodes ? { ...s, codes: true } : s);
      } catch (e) {
        throw new BenchSkip((e as Error).message);
      }
      const X = randomF32(nx, 1),
        Wt = randomF32(nw, 2, -0.3, 0.3),
        B = randomF32(O, 3),
        DY = randomF32(ny, 4);
      const bufs = {
        x: upload(gpu, X, 'bench x'),
        w: upload(gpu, Wt, 'bench w'),
        b: upload(gpu, B, 'bench b'),
        dy: upload(gpu, DY, 'bench dy'),
        out: gpu.pool.acquire(4 * Math.max(nx, nw, ny), 'bench out'),
        db: gpu.pool.acquire(4 * O, 'bench db'), // backward-weight computes the bias gradient too, as in training
        argmax: gpu.pool.acquire(4 * ny, 'bench argmax'), // of the pooled forward
      };
      const codes = withCodes ? gpu.pool.acquire(ny, 'bench window codes') : null; // (a byte per pooled output)
      const argmax = codes ? null : bufs.argmax;
      // the weight gradient behind the pool reads DY's first values as the pooled gradient, with the forward's argmax
      const scattered = op === 'pool-relu-backward-weight' && poolWeightSizes(s, withCodes).scattered;
      const dconv = scattered ? gpu.pool.acquire(4 * ny, 'bench scattered gradient') : null;
      if (op === 'pool-relu-backward-weight' || op === 'pool-relu-backward-input') {
        conv2dMaxPool2dRelu(gpu, bufs.x, bufs.w, bufs.b, bufs.out, argmax, pooledSizes({ ...layer.sizes, variant: undefined }), codes);
        const scatter = { N, C: O, H: OH, W: OW, relu: true };
        if (dconv && codes) maxPool2dBackwardCodes(gpu, bufs.dy, codes, dconv, scatter);
        else if (dconv) maxPool2dBackward(gpu, bufs.dy, bufs.argmax, dconv, scatter);
      }
      const poolWeight = { x: bufs.x, dy: bufs.dy, argmax, codes, dconv, dw: bufs.out, db: bufs.db };
      const run =
        op === 'forward'
          ? () => conv2d(gpu, bufs.x, bufs.w, bufs.b, bufs.out, s as Conv2dSizes & { tile?: Conv2dTile })
          : op === 'forward-pool-relu'
            ? () => conv2dMaxPool2dRelu(gpu, bufs.x, bufs.w, bufs.b, bufs.out, argmax, pooledSizes(s), codes)
            : op === 'backward-input'
              ? () => conv2dBackwardInput(gpu, bufs.dy, bufs.w, bufs.out, s as Conv2dSizes & { tile?: Conv2dTile })
              : op === 'backward-weight'
                ? () => conv2dBackwardWeight(gpu, bufs.x, bufs.dy, bufs.out, s as Conv2dSizes & { tile?: Conv2dWeightTile }, bufs.db)
                : op === 'pool-relu-backward-weight'
                  ? () =>
                      conv2dPoolReluBackwardWeight(gpu, poolWeight, {
                        ...s,
                        variant: poolWeightSizes(s).variant,
                        tile: poolWeightSizes(s).tile,
                      })
                  : op === 'pool-relu-backward-input'
                    ? () => conv2dPoolReluBackwardInput(gpu, { dy: bufs.dy, argmax, codes, w: bufs.w, dx: bufs.out }, pooledInputSizes(s))
                    : () => conv2dBackwardBias(gpu, bufs.dy, bufs.out, { N, O, OH, OW });
      const label = `${layer.name} ${op} ${opts.label ?? ''}`;
      // the forward's argmax, or the one its window codes stand for
      const pooledArgmax = async () =>
        codes ? refArgmaxOfCodes(await downloadU32(gpu, codes, ny / 16), { N, C: O, H: OH, W: OW }) : downloadI32(gpu, bufs.argmax, ny / 4);
      return {
        detail,
        run,
        async validate() {
          run();
          const got = await download(gpu, bufs.out, Math.max(nx, nw, ny));
          // Images checked: all of them, or as many as the reference can afford.
          const n = Math.max(1, Math.min(N, Math.floor((MAX_REF_MACS * N) / macs)));
          const p = { ...layer.sizes, N: n };
          if (op === 'forward') {
            const want = ref.conv2d(f64(X.subarray(0, n * C * H * W)), f64(Wt), f64(B), p);
            expectClose(got.subarray(0, want.length), want, { label, atol: 1e-6 * C * KH * KW + 1e-5 });
          } else if (op === 'forward-pool-relu') {
            const conv = ref.conv2d(f64(X.subarray(0, n * C * H * W)), f64(Wt), f64(B), p);
            const want = refMaxPool2d(conv, { N: n, C: O, H: OH, W: OW }).y.map((v) => Math.max(v, 0));
            expectClose(got.subarray(0, want.length), want, { label, atol: 1e-6 * C * KH * KW + 1e-5 });
          } else if (op === 'backward-input' || op === 'pool-relu-backward-input') {
            // behind the pool, the convolution's gradient is max_pool2d's backward of the pooled one
            const dyConv =
              op === 'backward-input'
                ? DY
                : Float32Array.from(refMaxPool2dBackward(DY.subarray(0, ny / 4), await pooledArgmax(), { N, C: O, H: OH, W: OW }));
            const want = ref.conv2dBackward(f64(X.subarray(0, n * C * H * W)), f64(Wt), f64(dyConv.subarray(0, n * O * OH * OW)), p).dx;
            expectClose(got.subarray(0, want.length), want, { label, atol: 1e-6 * O * KH * KW + 1e-5 });
          } else if (op === 'backward-weight' || op === 'pool-relu-backward-weight') {
            // behind the pool, the convolution's gradient is max_pool2d's backward of the pooled one
            const dyConv =
              op === 'backward-weight'
                ? DY
                : Float32Array.from(refMaxPool2dBackward(DY.subarray(0, ny / 4), await pooledArgmax(), { N, C: O, H: OH, W: OW }));
            checkWeightGrad(label, got.subarray(0, nw), X, dyConv, layer.sizes);
            const want = new Float64Array(O);
            for (let i = 0; i < ny; i++) want[Math.floor(i / (OH * OW)) % O] += dyConv[i];
            expectClose(await download(gpu, bufs.db, O), want, { label: `${label} db`, atol: 1e-6 * N * OH * OW + 1e-5 });
          } else {
            const want = new Float64Array(O);
            for (let i = 0; i < ny; i++) want[Math.floor(i / (OH * OW)) % O] += DY[i];
            expectClose(got.subarray(0, O), want, { label, atol: 1e-6 * N * OH * OW + 1e-5 });
          }
        },
        dispose: () => {
          for (const b of [...Object.values(bufs), ...(dconv ? [dconv] : []), ...(codes ? [codes] : [])]) gpu.pool.release(b);
        },
      };
    },
  };
}

/** dw against the reference: all of it when affordable, else 64 sampled weights summed directly. */
function checkWeightGrad(label: string, got: Float32Array, X: Float32Array, DY: Float32Array, s: Conv2dSizes): void {
  const { N, C, H, W, O, KH, KW } = s;
  const S = s.stride ?? 1,
    pad = s.padding ?? 0;
  const { OH, OW } = conv2dOutputSize(s);
  const atol = 1e-6 * N * OH * OW + 1e-5;
  if (N * O * OH * OW * C * KH * KW <= MAX_REF_MACS) {
    expectClose(got, ref.conv2dBackward(f64(X), new Float64Array(O * C * KH * KW), f64(DY), s).dw, { label, atol });
    return;
  }
  const picks = [0, got.length - 1, ...randomF32(62, 7, 0, 1).map((u) => Math.floor(u * got.length))];
  const want = picks.map((i) => {
    const kw = i % KW,
      kh = Math.floor(i / KW) % KH,
      c = Math.floor(i / (KW * KH)) % C,
      o = Math.floor(i / (KW * KH * C));
    let acc = 0;
    for (let n = 0; n < N; n++)
      for (let oh = 0; oh < OH; oh++) {
        const ih = oh * S + kh - pad;
        if (ih < 0 || ih >= H) continue;
        for (let ow = 0; ow < OW; ow++) {
          const iw = ow * S + kw - pad;
          if (iw >= 0 && iw < W) acc += DY[((n * O + o) * OH + oh) * OW + ow] * X[((n * C + c) * H + ih) * W + iw];
        }
      }
    return acc;
  });
  expectClose(
    picks.map((i) => got[i]),
    want,
    { label, atol },
  );
}

// The tilings measured for the v2 defaults (the default's own entry is the plain one above them).
const FORWARD_TILES: Conv2dTile[] = [
  { OT: 2, PT: 8, WG: 16 },
  { OT: 5, PT: 4, WG: 16 },
  { OT: 4, PT: 6, WG: 16 },
  { OT: 5, PT: 8, WG: 64 },
];
const INPUT_TILES: Conv2dTile[] = [
  { OT: 1, PT: 14, WG: 16 },
  { OT: 2, PT: 6, WG: 16 },
  { OT: 5, PT: 4, WG: 16 },
];
const WEIGHT_TILES: Conv2dWeightTile[] = [
  { OT: 5, PT: 1, WG: 8, groups: 64 },
  { OT: 5, PT: 2, WG: 8, groups: 64 },
  { OT: 2, PT: 4, WG: 8, groups: 64 },
  { OT: 5, PT: 8, WG: 8, groups: 64 },
  { OT: 5, PT: 4, WG: 8, groups: 16 },
];
/**
 * The images a uniform window holds for the tiles that read x as windows (patch.ts), at WebGPU's default 64 KiB
 * and in whole subgroups of 8 (llvmpipe), where the batch is whole windows; else 0. The tuner takes the adapter's own limits.
 */
function imagesPerWindow(s: Conv2dSizes): number {
  const UW = 8 * Math.floor(65536 / (4 * s.C * s.H * s.W) / 8);
  return UW > 0 && s.N % UW === 0 && s.N / UW <= 4 ? UW : 0; // (patch.ts: at most 4 windows)
}

const withoutAM = ({ AM: _, ...t }: Conv2dWeightTile): Conv2dWeightTile => t;

const tileLabel = (t: Conv2dTile | Conv2dWeightTile) => `v2 tile ${t.OT}ch x ${t.PT}col wg${t.WG}${'groups' in t ? ` g${t.groups}` : ''}`;

export const entries: BenchEntry[] = [
  // the library's choice for this adapter
  ...[CONV1, CONV2, BIG].flatMap((l) =>
    (['forward', 'backward-input', 'backward-weight', 'backward-bias'] as Op[]).map((op) =>
      entry(l, op, { samples: l === BIG ? 7 : undefined }),
    ),
  ),
  // the seed's layers as its network runs them: the forward with its pool and ReLU, the weight gradient behind it
  ...[CONV1, CONV2].flatMap((l) => [entry(l, 'forward-pool-relu'), entry(l, 'pool-relu-backward-weight')]),
  // and conv2's input gradient behind its pool, as the network runs it where it saves window codes
  entry(CONV2, 'pool-relu-backward-input'),
  // every variant of each op's registry at the seed's shapes (skipped where this adapter cannot run it)
  ...[CONV1, CONV2].flatMap((l) => [
    ...CONV2D_FORWARD.names.map((v) => entry(l, 'forward', { label: v, variant: v })),
    ...CONV2D_POOL_RELU.names.map((v) => entry(l, 'forward-pool-relu', { label: v, variant: v })),
    ...CONV2D_BACKWARD_INPUT.names.map((v) => entry(l, 'backward-input', { label: v, variant: v })),
    ...CONV2D_BACKWARD_WEIGHT.names.map((v) => entry(l, 'backward-weight', { label: v, variant: v })),
    ...CONV2D_POOL_RELU_BACKWARD_WEIGHT.names.map((v) => entry(l, 'pool-relu-backward-weight', { label: v, variant: v as Conv2dVariant })),
    ...CONV2D_POOL_RELU_BACKWARD_INPUT.names.map((v) => entry(l, 'pool-relu-backward-input', { label: v, variant: v as Conv2dVariant })),
  ]),
  // the v2 tilings behind the defaults
  ...[CONV1, CONV2].flatMap((l) => [
    ...FORWARD_TILES.map((t) => entry(l, 'forward', { label: tileLabel(t), variant: 'v2', tile: t })),
    ...INPUT_TILES.map((t) => entry(l, 'backward-input', { label: tileLabel(t), variant: 'v2', tile: t })),
    ...WEIGHT_TILES.map((t) => entry(l, 'backward-weight', { label: tileLabel(t), variant: 'v2', tile: t })),
  ]),
  // every v4 forward and backward-input tile a tuner may time
  ...[CONV1, CONV2].flatMap((l) => {
    const { OH, OW } = conv2dOutputSize(l.sizes);
    const fwd = conv2dTilesV4({ Cout: l.sizes.O, Hout: OH, Wout: OW, Win: l.sizes.W, S: l.sizes.stride ?? 1, flip: false });
    const bwd = conv2dTilesV4({ Cout: l.sizes.C, Hout: l.sizes.H, Wout: l.sizes.W, Win: OW, S: 1, flip: true });
    const pooled = conv2dPoolTilesV4({
      Cin: l.sizes.C,
      Cout: l.sizes.O,
      Hout: OH,
      Wout: OW,
      Win: l.sizes.W,
      S: l.sizes.stride ?? 1,
      padH: l.sizes.padding ?? 0,
      padW: l.sizes.padding ?? 0,
      KH: l.sizes.KH,
      KW: l.sizes.KW,
      flip: false,
    });
    const UW = imagesPerWindow(l.sizes);
    const windowed = pooled[0]?.OL && UW ? [{ ...pooled[0], UW }] : [];
    return [
      ...fwd.map((t) => entry(l, 'forward', { label: choiceLabel({ variant: 'v4', config: t }), variant: 'v4', tile: t })),
      ...[...pooled, ...windowed].map((t) =>
        entry(l, 'forward-pool-relu', { label: choiceLabel({ variant: 'v4', config: t }), variant: 'v4', tile: t }),
      ),
      ...bwd.map((t) => entry(l, 'backward-input', { label: choiceLabel({ variant: 'v4', config: t }), variant: 'v4', tile: t })),
    ];
  }),
  // every v4 backward-weight tile a tuner may time on an adapter with subgroups of 8 (llvmpipe), and behind the pool
  ...[CONV1, CONV2].flatMap((l) => [
    ...conv2dWeightTilesV4(geometry('bench', l.sizes), 8).map((t) =>
      entry(l, 'backward-weight', { label: choiceLabel({ variant: 'v4', config: t }), variant: 'v4', tile: t }),
    ),
    // (and the first without AM, which multiplies all four positions of a window: the same sums, for comparison)
    ...imageLanesTiles(geometry('bench', l.sizes), 8, true)
      .flatMap((t, i) => [
        t,
        ...(imagesPerWindow(l.sizes) ? [{ ...t, UW: imagesPerWindow(l.sizes) }] : []),
        ...(i === 0 ? [withoutAM(t)] : []),
      ])
      .map((t) => entry(l, 'pool-relu-backward-weight', { label: choiceLabel({ variant: 'v4', config: t }), variant: 'v4', tile: t })),
  ]),
];
