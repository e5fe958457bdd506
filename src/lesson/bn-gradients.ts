// The lesson's gradient picture: "histograms over the gradients at initialization for (midpoint) layer 55 of a
// network with BN (left) and without (right). For the unnormalized network, the gradients are distributed with
// heavy tails, whereas for the normalized networks the gradients are concentrated around the mean."
//
// A deep MLP on the digits, `depth` Linear layers (784 → width, width → width, …, width → 10), each but the
// last followed by BatchNorm1d and ReLU, or by ReLU alone; both networks get the same initial weights and the
// same batch. One forward and backward of the cross-entropy each, on the GPU; the middle layer's weight
// gradient is read back and summarised (std, kurtosis, max |g|) and drawn as two histograms with log counts.
//
// The second part is the older per-step record for the seed's CNN: each layer's weight-gradient norm at every
// step of a short training with and without batch norm, from the same weights and batches.
import { loadEmbeddedDigits } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { splitTrainVal } from '../data/split.js';
import type { Gpu } from '../gpu/runtime.js';
import { type InitName, initBias, initWeight, makeRng } from '../nn/init.js';
import { BatchNorm1d, Linear, type Module, ReLU, Sequential } from '../nn/modules.js';
import * as F from '../nn/ops.js';
import { Tensor, tidy } from '../nn/tensor.js';
import type { Figure } from '../plot/figure.js';
import { histogramCounts } from '../plot/plot.js';
import { SEED_TRAINING, Trainer } from '../train/trainer.js';
import { type Moments, moments, sig } from './stats.js';

export interface BnGradientsOptions {
  seed: number;
  /** Linear layers in the deep network (at least 50 for the lesson's picture). */
  depth: number;
  width: number;
  batch: number;
  init: InitName;
  bins: number;
  /** The CNN part: epochs and digits (0 epochs leaves it out). */
  cnnEpochs: number;
  cnnLimit: number;
  lr: number;
}

export const BN_GRADIENTS_DEFAULTS: BnGradientsOptions = {
  seed: 42,
  depth: 60,
  width: 128,
  batch: 128,
  init: 'kaiming-normal',
  bins: 80,
  cnnEpochs: 2,
  cnnLimit: 4000,
  lr: 0.01,
};
export const BN_GRADIENTS_QUICK: BnGradientsOptions = { ...BN_GRADIENTS_DEFAULTS, depth: 50, width: 64, cnnEpochs: 2, cnnLimit: 2500 };

/** The figures an experiment with options `o` draws: the histograms, and the CNN's norms unless it has no epochs. */
export const bnGradientsFigures = (o: BnGradientsOptions): string[] => ['bn-gradients', ...(o.cnnEpochs > 0 ? ['bn-gradients-cnn'] : [])];

export interface GradientHistogram extends Moments {
  edges: number[];
  counts: number[];
}

const CNN_LAYERS = ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight'] as const;

export interface CnnRun {
  /** L2 norm of each layer's weight gradient at every step. */
  norms: Record<(typeof CNN_LAYERS)[number], number[]>;
  trainLoss: number[];
  valAcc: number;
}

export interface BnGradientsResult {
  options: BnGradientsOptions;
  /** Index (0-based) of the Linear layer whose weight gradient is shown. */
  layer: number;
  withBn: GradientHistogram;
  withoutBn: GradientHistogram;
  cnn: { withBn: CnnRun; withoutBn: CnnRun } | null;
}

/** The deep MLP: Linear (+ BatchNorm1d) + ReLU blocks, then a Linear to the 10 classes, with given weights. */
function deepMlp(
  weights: { w: Float32Array; b: Float32Array; shape: [number, number] }[],
  batchNorm: boolean,
): { net: Sequential; linears: Linear[] } {
  const layers: Module[] = [];
  const linears: Linear[] = [];
  weights.forEach(({ w, b, shape }, i) => {
    const lin = new Linear(shape[1], shape[0], { rng: () => 0 });
    lin.loadStateDict({ weight: { shape, data: w }, bias: { shape: [shape[0]], data: b } });
    linears.push(lin);
    layers.push(lin);
    if (i < weights.length - 1) {
      if (batchNorm) layers.push(new BatchNorm1d(shape[0]));
      layers.push(new ReLU());
    }
  });
  return { net: new Sequential(...layers), linears };
}

async function middleGradient(
  weights: Parameters<typeof deepMlp>[0],
  batchNorm: boolean,
  x: Tensor,
  y: Tensor,
  layer: number,
  bins: number,
): Promise<GradientHistogram> {
  const { net, linears } = deepMlp(weights, batchNorm);
  tidy(() => F.crossEntropy(net.forward(x), y).backward());
  const g = (await linears[layer].weight.grad!.toArray()) as Float32Array;
  for (const t of net.stateDict().values()) t.dispose();
  for (const p of net.parameters()) p.grad?.dispose();
  return { ...moments(g), ...histogramCounts(g, bins) };
}

async function cnnNorms(gpu: Gpu, o: BnGradientsOptions): Promise<BnGradientsResult['cnn']> {
  if (o.cnnEpochs === 0) return null;
  const ds = loadEmbeddedDigits(o.cnnLimit);
  const split = splitTrainVal(ds.count, 0.2, o.seed);
  const data = GpuDataset.upload(gpu, ds, 'train');
  const steps = Math.ceil(split.train.length / SEED_TRAINING.batchSize);
  const runs: CnnRun[] = [];
  for (const batchNorm of [true, false]) {
    const trainer = new Trainer(gpu, { ...SEED_TRAINING, epochs: o.cnnEpochs, patience: o.cnnEpochs, lr: o.lr, seed: o.seed, batchNorm });
    const params = new Map(trainer.model.namedParameters());
    const run: CnnRun = { norms: { 'conv1.weight': [], 'conv2.weight': [], 'fc1.weight': [], 'fc2.weight': [] }, trainLoss: [], valAcc: 0 };
    for (let epoch = 1; epoch <= o.cnnEpochs; epoch++) {
      // Σg² of each layer copied into one buffer at every step (on the GPU), read back once per epoch.
      const record = Tensor.empty([steps * CNN_LAYERS.length], { label: 'gradient sums of squares' }).keep();
      let step = 0;
      const loss = await trainer.trainEpoch({ data, indices: split.train }, epoch, undefined, undefined, () => {
        CNN_LAYERS.forEach((layer, l) => {
          const g = params.get(layer)!.grad!;
          gpu.copy(F.sum(F.mul(g, g)).buffer, 0, record.buffer, 4 * (step * CNN_LAYERS.length + l), 4);
        });
        step++;
      });
      const sq = (await record.toArray()) as Float32Array;
      record.dispose();
      for (let s = 0; s < step; s++)
        for (const [l, layer] of CNN_LAYERS.entries()) run.norms[layer].push(Math.sqrt(sq[s * CNN_LAYERS.length + l]));
      run.trainLoss.push(loss);
    }
    run.valAcc = (await trainer.evaluate({ data, indices: split.val })).accuracy;
    for (const t of trainer.model.stateDict().values()) t.dispose();
    runs.push(run);
  }
  data.dispose();
  return { withBn: runs[0], withoutBn: runs[1] };
}

export async function runBnGradients(gpu: Gpu, o: BnGradientsOptions): Promise<BnGradientsResult> {
  // One batch of digits (a seeded choice among the 10,000) and one set of initial weights for both networks.
  const ds = loadEmbeddedDigits();
  const pick = splitTrainVal(ds.count, 0.2, o.seed).train.subarray(0, o.batch);
  const xs = new Float32Array(o.batch * 784);
  const ys = new Int32Array(o.batch);
  pick.forEach((idx, k) => {
    for (let p = 0; p < 784; p++) xs[k * 784 + p] = ds.images[idx * 784 + p] / 255;
    ys[k] = ds.labels[idx];
  });
  const rng = makeRng(o.seed);
  const weights = Array.from({ length: o.depth }, (_, i) => {
    const shape: [number, number] = [i === o.depth - 1 ? 10 : o.width, i === 0 ? 784 : o.width];
    return { shape, w: initWeight(o.init, shape, rng), b: initBias(shape[1], shape[0], rng) };
  });
  const layer = Math.floor(o.depth / 2);
  const x = F.tensor(xs, [o.batch, 784]).keep();
  const y = F.tensor(ys, [o.batch], { dtype: 'int32' }).keep();
  const withBn = await middleGradient(weights, true, x, y, layer, o.bins);
  const withoutBn = await middleGradient(weights, false, x, y, layer, o.bins);
  x.dispose();
  y.dispose();
  return { options: o, layer, withBn, withoutBn, cnn: await cnnNorms(gpu, o) };
}

export function bnGradientsFigure(r: BnGradientsResult): Figure {
  const panel = (h: GradientHistogram, bn: boolean) => ({
    title: bn ? 'With batch norm' : 'Without batch norm',
    xLabel: `Gradient of layer ${r.layer + 1}'s weights / its std`,
    yLabel: 'Count',
    // In units of each network's own std: the shapes compare directly (the scales are in the notes).
    x: {
      min: -Math.max(r.withBn.maxAbs / r.withBn.std, r.withoutBn.maxAbs / r.withoutBn.std) * 1.05,
      max: Math.max(r.withBn.maxAbs / r.withBn.std, r.withoutBn.maxAbs / r.withoutBn.std) * 1.05,
    },
    y: { scale: 'log' as const },
    layers: [
      { kind: 'bars' as const, edges: h.edges.map((e) => (e - h.mean) / h.std), counts: h.counts, color: bn ? '#1f77b4' : '#d62728' },
    ],
    note: { corner: 'upper right' as const, lines: [`std ${sig(h.std)}`, `kurtosis ${sig(h.kurtosis)}`, `max |g| ${sig(h.maxAbs)}`] },
  });
  return {
    width: 1200,
    height: 500,
    title: `Weight gradients of layer ${r.layer + 1} of ${r.options.depth} at initialisation (width ${r.options.width}; same weights, same ${r.options.batch} digits)`,
    shareY: true,
    panels: [panel(r.withBn, true), panel(r.withoutBn, false)],
  };
}

/** The CNN's per-step weight-gradient norms (log scale), with and without batch norm. */
export function cnnGradientsFigure(cnn: NonNullable<BnGradientsResult['cnn']>): Figure {
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728'];
  const layers = (run: CnnRun, bn: boolean) =>
    CNN_LAYERS.map((layer, l) => ({
      kind: 'line' as const,
      x: run.norms[layer].map((_, s) => s + 1),
      y: run.norms[layer],
      color: colors[l],
      dash: bn ? undefined : ('dashed' as const),
    }));
  return {
    width: 1000,
    height: 620,
    title: "Weight-gradient norm per step, the seed's CNN with and without batch norm",
    legend: [
      ...CNN_LAYERS.map((l, i) => ({ label: l.replace('.weight', ''), color: colors[i], swatch: 'line' as const })),
      { label: 'with BN', color: '#555555', swatch: 'line' as const },
      { label: 'without BN', color: '#555555', swatch: 'line' as const, dash: 'dashed' as const },
    ],
    panels: [
      {
        xLabel: 'Step',
        yLabel: '‖gradient‖',
        x: { integer: true },
        y: { scale: 'log' },
        grid: true,
        layers: [...layers(cnn.withBn, true), ...layers(cnn.withoutBn, false)],
      },
    ],
  };
}

export function bnGradientsSummary(r: BnGradientsResult): string[] {
  const line = (name: string, h: GradientHistogram) =>
    `${name.padEnd(11)} layer ${r.layer + 1} weight gradient: std ${sig(h.std).padStart(9)}  kurtosis ${sig(h.kurtosis).padStart(6)}  max |g| ${sig(h.maxAbs)}`;
  const out = [line('with BN', r.withBn), line('without BN', r.withoutBn)];
  if (r.cnn)
    for (const [name, run] of [
      ['with BN', r.cnn.withBn],
      ['without BN', r.cnn.withoutBn],
    ] as const) {
      const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
      out.push(
        `CNN ${name.padEnd(11)} validation accuracy ${(100 * run.valAcc).toFixed(2)}%; mean gradient norms ` +
          CNN_LAYERS.map((l) => `${l.replace('.weight', '')} ${sig(mean(run.norms[l]))}`).join(', '),
      );
    }
  return out;
}
