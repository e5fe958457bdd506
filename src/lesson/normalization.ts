// The lesson's input-normalisation picture: "contour of the loss with respect to two parameters and SGD
// trajectory". A linear model with two weights, y = w1·x1 + w2·x2, is fitted by SGD (mean squared error
// L(w) = Σ(w·x − y)²/2n) to inputs that are all positive and on very different scales (x1 ~ U(0, 1),
// x2 ~ U(0, 10)), and again to the same inputs standardised (zero mean, unit variance; the target centred),
// from the same start and with the same learning rate. The loss is a quadratic whose Hessian is E[x xᵀ]: on
// the raw inputs its contours are long, tilted ellipses (condition number λmax/λmin in the hundreds), SGD
// overshoots across the narrow valley and zig-zags; standardised, the contours are nearly circles and the path
// goes straight in. Everything is computed on the GPU through the engine: the statistics and Hessian by
// matmul, every SGD step (F.linear, F.sub, F.mul, F.mean, backward, SGD), and the loss over the whole grid of
// weights in one batched pass (one matmul gives every grid point's residuals, then square and a matmul by
// ones averages them).
import type { Gpu } from '../gpu/runtime.js';
import { makeRng } from '../nn/init.js';
import * as F from '../nn/ops.js';
import { SGD } from '../nn/optim.js';
import { noGrad, type Tensor, tidy } from '../nn/tensor.js';
import type { Figure, Panel } from '../plot/figure.js';
import { shuffleInPlace } from '../util/random.js';
import { eigenvalues2, sig } from './stats.js';

export interface NormalizationOptions {
  seed: number;
  /** Samples. */
  n: number;
  batchSize: number;
  steps: number;
  /** Grid points per side of the loss surface. */
  grid: number;
  /** Learning rate as a fraction of the raw problem's stability limit 2/λmax. */
  lrFraction: number;
}

export const NORMALIZATION_DEFAULTS: NormalizationOptions = { seed: 42, n: 512, batchSize: 32, steps: 1000, grid: 121, lrFraction: 0.9 };
export const NORMALIZATION_QUICK: NormalizationOptions = { ...NORMALIZATION_DEFAULTS, n: 256, steps: 800, grid: 61 };

/** The true weights of the raw problem and the common starting point. */
const W_TRUE: [number, number] = [2, -0.3];
const W_START: [number, number] = [-1.5, 1.5];

export interface ProblemResult {
  name: 'raw' | 'standardized';
  /** Per input: mean and std over the samples (after standardising: 0 and 1). */
  inputMean: [number, number];
  inputStd: [number, number];
  /** Hessian E[x xᵀ] of the loss, its eigenvalues (ascending) and condition number λmax/λmin. */
  hessian: [number, number, number];
  eigenvalues: [number, number];
  conditionNumber: number;
  minimum: [number, number];
  minLoss: number;
  /** Weights after each step (steps + 1 points, the start first) and the full-data loss there. */
  path: [number, number][];
  pathLoss: number[];
  /**
   * First step after which the weights stay within 1% of the start's distance from the minimum
   * (‖w_t − w*‖ ≤ 0.01·‖w_0 − w*‖ from then on); null if they never got there.
   */
  stepsTo1Percent: number | null;
  grid: { w1: number[]; w2: number[]; loss: number[] };
}

export interface NormalizationResult {
  options: NormalizationOptions;
  lr: number;
  start: [number, number];
  problems: [ProblemResult, ProblemResult];
}

/** [n, 3] rows (x1, x2, y) of the raw problem. */
function makeData(o: NormalizationOptions): Float32Array {
  const rng = makeRng(o.seed);
  const rows = new Float32Array(o.n * 3);
  for (let i = 0; i < o.n; i++) {
    const x1 = rng(),
      x2 = 10 * rng();
    const noise = 0.1 * (rng() + rng() + rng() - 1.5);
    rows.set([x1, x2, W_TRUE[0] * x1 + W_TRUE[1] * x2 + noise], 3 * i);
  }
  return rows;
}

/** Column means and standard deviations of the [n, 3] rows, on the GPU: 1ᵀA/n and 1ᵀ(A − 1μᵀ)²/n by matmul. */
async function columnStats(A: Tensor, n: number): Promise<{ mean: number[]; std: number[] }> {
  return noGrad(async () => {
    const ones = F.full([1, n], 1 / n);
    const mu = F.matmul(ones, A); // [1, 3]
    const centred = F.sub(A, F.matmul(F.ones([n, 1]), mu));
    const variance = F.matmul(ones, F.mul(centred, centred));
    const [m, v] = [await mu.toArray(), await variance.toArray()];
    for (const t of [ones, mu, centred, variance]) t.dispose();
    return { mean: Array.from(m), std: Array.from(v, Math.sqrt) };
  });
}

/**
 * L(w) = Σ_i (w·x_i − y_i)²/2n for every row w of W [G, 2], in one pass: with A the [n, 3] rows (x1, x2, y) and
 * Wa = [W, −1] [G, 3], the residuals are Wa·Aᵀ [G, n]; squared and multiplied by a column of 1/2n, [G, 1].
 */
function lossAt(At: Tensor, W: Float32Array, n: number): Tensor {
  const G = W.length / 2;
  const wa = new Float32Array(G * 3);
  for (let g = 0; g < G; g++) wa.set([W[2 * g], W[2 * g + 1], -1], 3 * g);
  return noGrad(() =>
    tidy(() => {
      const r = F.matmul(F.tensor(wa, [G, 3]), At);
      return F.matmul(F.mul(r, r), F.full([n, 1], 1 / (2 * n)));
    }),
  );
}

async function runProblem(
  gpu: Gpu,
  name: ProblemResult['name'],
  rows: Float32Array,
  o: NormalizationOptions,
  lrFor: (lambdaMax: number) => number,
): Promise<ProblemResult & { lr: number }> {
  const n = o.n;
  const A = F.tensor(rows, [n, 3]).keep();
  const At = F.tensor(transpose(rows, n, 3), [3, n]).keep();
  const stats = await columnStats(A, n);
  // Hessian E[x xᵀ] and E[x y] from Aᵀ·A/n; the minimum solves H·w = E[x y] (2x2, on the CPU).
  const gram = await noGrad(() => tidy(() => F.mulScalar(F.matmul(At, A), 1 / n))).toArray();
  const [h11, h12, h22] = [gram[0], gram[1], gram[4]];
  const [b1, b2] = [gram[2], gram[5]];
  const det = h11 * h22 - h12 * h12;
  const minimum: [number, number] = [(h22 * b1 - h12 * b2) / det, (h11 * b2 - h12 * b1) / det];
  const eigenvalues = eigenvalues2(h11, h12, h22);
  const lr = lrFor(eigenvalues[1]);

  // SGD from the common start, recording the weights after every step on the GPU.
  const w = F.tensor(W_START, [1, 2], { requiresGrad: true }).keep();
  const opt = new SGD([w], { lr });
  const path = F.zeros([o.steps + 1, 2]).keep();
  gpu.copy(w.buffer, 0, path.buffer, 0, 8);
  const rng = makeRng(o.seed + 7);
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const xb = new Float32Array(o.batchSize * 2),
    yb = new Float32Array(o.batchSize);
  for (let step = 0, at = n; step < o.steps; step++, at += o.batchSize) {
    if (at + o.batchSize > n) {
      shuffleInPlace(order, rng);
      at = 0;
    }
    for (let k = 0; k < o.batchSize; k++) {
      const i = order[at + k];
      xb.set([rows[3 * i], rows[3 * i + 1]], 2 * k);
      yb[k] = rows[3 * i + 2];
    }
    tidy(() => {
      opt.zeroGrad();
      const d = F.sub(F.linear(F.tensor(xb, [o.batchSize, 2]), w), F.tensor(yb, [o.batchSize, 1]));
      F.mulScalar(F.mean(F.mul(d, d)), 0.5).backward();
      opt.step();
      gpu.copy(w.buffer, 0, path.buffer, 8 * (step + 1), 8);
    });
    gpu.flush();
  }
  const pathW = (await path.toArray()) as Float32Array;
  const pts: [number, number][] = Array.from({ length: o.steps + 1 }, (_, t) => [pathW[2 * t], pathW[2 * t + 1]]);

  // The loss along the path, at the minimum, and over a grid framing start, path and minimum.
  const pathLoss = Array.from((await lossAt(At, pathW, n).toArray()) as Float32Array);
  const minLoss = (await lossAt(At, Float32Array.from(minimum), n).toArray())[0];
  const xs = [...pts.map((p) => p[0]), minimum[0]],
    ys = [...pts.map((p) => p[1]), minimum[1]];
  const span = (v: number[]) => {
    const lo = Math.min(...v),
      hi = Math.max(...v),
      pad = 0.15 * (hi - lo || 1);
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = span(xs),
    [y0, y1] = span(ys);
  const g1 = Array.from({ length: o.grid }, (_, i) => x0 + ((x1 - x0) * i) / (o.grid - 1));
  const g2 = Array.from({ length: o.grid }, (_, j) => y0 + ((y1 - y0) * j) / (o.grid - 1));
  const gridW = new Float32Array(o.grid * o.grid * 2);
  for (let j = 0; j < o.grid; j++) for (let i = 0; i < o.grid; i++) gridW.set([g1[i], g2[j]], 2 * (j * o.grid + i));
  const gridLoss = Array.from((await lossAt(At, gridW, n).toArray()) as Float32Array);

  const dist = pts.map(([a, b]) => Math.hypot(a - minimum[0], b - minimum[1]));
  let hit = dist.length;
  while (hit > 0 && dist[hit - 1] <= 0.01 * dist[0]) hit--;
  for (const t of [A, At, w, path]) t.dispose();
  opt.zeroGrad();
  return {
    name,
    lr,
    inputMean: [stats.mean[0], stats.mean[1]],
    inputStd: [stats.std[0], stats.std[1]],
    hessian: [h11, h12, h22],
    eigenvalues,
    conditionNumber: eigenvalues[1] / eigenvalues[0],
    minimum,
    minLoss,
    path: pts,
    pathLoss,
    stepsTo1Percent: hit === dist.length ? null : hit,
    grid: { w1: g1, w2: g2, loss: gridLoss },
  };
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

export async function runNormalization(gpu: Gpu, o: NormalizationOptions): Promise<NormalizationResult> {
  const rows = makeData(o);
  // The learning rate: a fraction of the raw problem's stability limit, used for both problems.
  const raw = await runProblem(gpu, 'raw', rows, o, (lambdaMax) => (o.lrFraction * 2) / lambdaMax);
  // The same inputs standardised with their mean and std (measured on the GPU above), the target centred.
  const std = new Float32Array(rows.length);
  const yMean = rows.reduce((s, v, i) => (i % 3 === 2 ? s + v : s), 0) / o.n;
  for (let i = 0; i < o.n; i++) {
    std[3 * i] = (rows[3 * i] - raw.inputMean[0]) / raw.inputStd[0];
    std[3 * i + 1] = (rows[3 * i + 1] - raw.inputMean[1]) / raw.inputStd[1];
    std[3 * i + 2] = rows[3 * i + 2] - yMean;
  }
  const standardized = await runProblem(gpu, 'standardized', std, o, () => raw.lr);
  const { lr, ...rawResult } = raw;
  const { lr: _, ...stdResult } = standardized;
  return { options: o, lr, start: W_START, problems: [rawResult, stdResult] };
}

/** Contour levels that show both the narrow valley and the far slopes: quadratically spaced above the minimum. */
function levels(loss: number[], minLoss: number, count = 14): number[] {
  const hi = Math.max(...loss);
  const lo = Math.min(minLoss, ...loss);
  return Array.from({ length: count }, (_, k) => lo + (hi - lo) * (k / count) ** 2);
}

export function normalizationFigure(r: NormalizationResult): Figure {
  const panel = (p: ProblemResult): Panel => ({
    title: p.name === 'raw' ? 'Raw inputs (all positive, x₂ ≈ 10·x₁)' : 'Standardised inputs',
    xLabel: 'w₁',
    yLabel: 'w₂',
    x: { min: p.grid.w1[0], max: p.grid.w1.at(-1) },
    y: { min: p.grid.w2[0], max: p.grid.w2.at(-1) },
    layers: [
      {
        kind: 'contour',
        x: p.grid.w1,
        y: p.grid.w2,
        z: p.grid.loss,
        levels: levels(p.grid.loss, p.minLoss),
        lines: true,
        lineColor: '#ffffff',
      },
      {
        kind: 'line',
        x: p.path.map((q) => q[0]),
        y: p.path.map((q) => q[1]),
        color: '#d62728',
        width: 1.4,
        marker: 'o',
        markerSize: 1.6,
        label: 'SGD path',
      },
      { kind: 'points', x: [p.path[0][0]], y: [p.path[0][1]], marker: 's', color: '#ff7f0e', label: 'start' },
      { kind: 'points', x: [p.minimum[0]], y: [p.minimum[1]], marker: '*', color: '#ffffff', size: 7, label: 'minimum' },
    ],
    legend: 'upper right',
    note: {
      corner: 'lower left',
      lines: [
        `condition number ${sig(p.conditionNumber)}`,
        `steps to within 1% of the minimum: ${p.stepsTo1Percent ?? `> ${p.path.length - 1}`}`,
      ],
    },
  });
  return {
    width: 1200,
    height: 540,
    title: `Loss contours and the SGD path (same start, lr ${sig(r.lr)}, batch ${r.options.batchSize})`,
    panels: [panel(r.problems[0]), panel(r.problems[1])],
  };
}

export function normalizationSummary(r: NormalizationResult): string[] {
  return r.problems.map(
    (p) =>
      `${p.name.padEnd(12)} condition number ${sig(p.conditionNumber).padStart(7)}  eigenvalues ${sig(p.eigenvalues[0])}, ${sig(p.eigenvalues[1])}  ` +
      `steps to within 1% of the minimum: ${p.stepsTo1Percent ?? `never in ${p.path.length - 1}`}`,
  );
}
