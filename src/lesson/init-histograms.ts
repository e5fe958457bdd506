// The lesson's initialisation experiment: standard-normal inputs [batch, 784] go through a stack of
// fully connected layers (784 → 256, then 256 → 256; biases zero) with an activation (ReLU as the lesson's
// SimpleMLP, or tanh, or sigmoid, which its comment says may be swapped in), once per weight initialiser, on
// the GPU. The histograms of the last layer's outputs (one layer: the lesson's picture) and, for deeper stacks,
// each layer's output std show which initialisers keep activations in a healthy range: He/Kaiming for ReLU,
// Xavier/Glorot for tanh, while N(0, 1) explodes (or saturates) and small ones vanish layer after layer.
import type { Gpu } from '../gpu/runtime.js';
import { INITIALIZERS, type InitName, initWeight, makeRng, normalSampler } from '../nn/init.js';
import * as F from '../nn/ops.js';
import { noGrad, type Tensor, tidy } from '../nn/tensor.js';
import { type Figure, type Panel, TAB10 } from '../plot/figure.js';
import { histogramCounts } from '../plot/plot.js';
import type { ScaleKind } from '../plot/scale.js';
import { type Moments, moments, sig } from './stats.js';

export const ACTIVATIONS = ['relu', 'tanh', 'sigmoid'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export interface InitHistogramsOptions {
  seed: number;
  activation: Activation;
  layers: number;
  /** Input rows (the lesson uses 1; more give smoother histograms). */
  batch: number;
  bins: number;
}

export const INIT_HISTOGRAMS_DEFAULTS: InitHistogramsOptions = { seed: 42, activation: 'relu', layers: 1, batch: 64, bins: 60 };

const WIDTH = 256;
const INPUTS = 784;

export interface LayerStats extends Moments {
  /** Fraction of outputs exactly 0 (dead ReLUs). */
  zeros: number;
}

export interface InitHistogramsResult {
  options: InitHistogramsOptions;
  input: LayerStats;
  /** Per initialiser: the statistics of each layer's outputs (layer 1 first). */
  layers: Record<InitName, LayerStats[]>;
  /** Histograms (shared bins) of the input and of each initialiser's last-layer outputs. */
  histograms: { edges: number[]; scale: ScaleKind; counts: Record<'input' | InitName, number[]> };
}

const activate = (a: Activation, h: Tensor) => (a === 'relu' ? F.relu(h) : a === 'tanh' ? F.tanh(h) : F.sigmoid(h));

function layerStats(v: Float32Array): LayerStats {
  let zeros = 0;
  for (const x of v) if (x === 0) zeros++;
  return { ...moments(v), zeros: zeros / v.length };
}

export async function runInitHistograms(_gpu: Gpu, o: InitHistogramsOptions): Promise<InitHistogramsResult> {
  const normal = normalSampler(makeRng(o.seed));
  const input = Float32Array.from({ length: o.batch * INPUTS }, normal);
  const x = F.tensor(input, [o.batch, INPUTS]).keep();
  const layers = {} as Record<InitName, LayerStats[]>;
  const last = {} as Record<InitName, Float32Array>;
  for (const [k, name] of INITIALIZERS.entries()) {
    const rng = makeRng(o.seed + 1 + k);
    let h = x;
    layers[name] = [];
    for (let l = 0; l < o.layers; l++) {
      const fanIn = l === 0 ? INPUTS : WIDTH;
      const next = noGrad(() =>
        tidy(() => activate(o.activation, F.linear(h, F.tensor(initWeight(name, [WIDTH, fanIn], rng), [WIDTH, fanIn]), F.zeros([WIDTH])))),
      ).keep();
      const values = (await next.toArray()) as Float32Array;
      layers[name].push(layerStats(values));
      if (h !== x) h.dispose();
      h = next;
      if (l === o.layers - 1) last[name] = values;
    }
    if (h !== x) h.dispose();
  }
  x.dispose();

  // Shared bins over every panel's values: linear for the bounded activations, symlog (linear within ±1,
  // logarithmic beyond) for ReLU, whose outputs range from 0 to ~100 depending on the initialiser.
  const scale: ScaleKind = o.activation === 'relu' ? 'symlog' : 'linear';
  const t =
    scale === 'symlog' ? (v: number) => Math.sign(v) * (Math.abs(v) <= 1 ? Math.abs(v) : 1 + Math.log10(Math.abs(v))) : (v: number) => v;
  const tInv =
    scale === 'symlog' ? (u: number) => Math.sign(u) * (Math.abs(u) <= 1 ? Math.abs(u) : 10 ** (Math.abs(u) - 1)) : (u: number) => u;
  const all = [input, ...Object.values(last)];
  let lo = Infinity,
    hi = -Infinity;
  for (const a of all)
    for (const v of a)
      if (Number.isFinite(v)) {
        lo = Math.min(lo, t(v));
        hi = Math.max(hi, t(v));
      }
  const counts = {} as Record<'input' | InitName, number[]>;
  let edges: number[] = [];
  for (const [name, values] of [['input', input] as const, ...Object.entries(last)] as [keyof typeof counts, Float32Array][]) {
    const h = histogramCounts(Float64Array.from(values, t), o.bins, [lo, hi]);
    counts[name] = h.counts;
    edges = h.edges.map(tInv);
  }
  return { options: o, input: layerStats(input), layers, histograms: { edges, scale, counts } };
}

const TITLES: Record<InitName, string> = {
  pytorch: 'PyTorch default U(±1/√fan_in)',
  normal: 'normal N(0, 1)',
  zeros: 'zeros',
  'xavier-normal': 'Xavier (Glorot) normal',
  'xavier-uniform': 'Xavier (Glorot) uniform',
  'kaiming-normal': 'He (Kaiming) normal',
  'kaiming-uniform': 'He (Kaiming) uniform',
};

export function initHistogramsFigure(r: InitHistogramsResult): Figure {
  const { edges, scale, counts } = r.histograms;
  const o = r.options;
  const layerName = o.layers === 1 ? `Linear(784→256)+${o.activation}` : `layer ${o.layers} of ${o.layers}`;
  const panel = (name: 'input' | InitName, i: number): Panel => {
    const s = name === 'input' ? r.input : r.layers[name].at(-1)!;
    return {
      title: name === 'input' ? 'input N(0, 1)' : TITLES[name],
      xLabel: name === 'input' ? 'Input value' : 'Output value',
      yLabel: 'Count',
      x: { scale, margin: 0.02 },
      y: { scale: 'log' },
      layers: [{ kind: 'bars', edges, counts: counts[name], color: TAB10[i % 10] }],
      note: {
        corner: 'upper right',
        lines: [`std ${sig(s.std)}`, ...(o.activation === 'relu' && name !== 'input' ? [`zeros ${Math.round(100 * s.zeros)}%`] : [])],
      },
    };
  };
  return {
    width: 1400,
    height: 720,
    title: `Outputs of ${layerName} under each initialiser (${o.batch} inputs, shared axes, log counts)`,
    cols: 4,
    shareX: true,
    shareY: true,
    panels: [panel('input', 7), ...INITIALIZERS.map((n, i) => panel(n, i))],
  };
}

/** Each initialiser's output std per layer (log scale): which keep the signal, which explode or vanish. */
export function initStdFigure(r: InitHistogramsResult): Figure {
  const layers = Array.from({ length: r.options.layers }, (_, l) => l + 1);
  return {
    width: 900,
    height: 560,
    panels: [
      {
        title: `Activation std per layer, ${r.options.activation} (zeros: 0 everywhere, not drawn)`,
        xLabel: 'Layer',
        yLabel: 'Std of the layer outputs',
        x: { integer: true },
        y: { scale: 'log' },
        grid: true,
        legend: 'best',
        layers: INITIALIZERS.filter((n) => n !== 'zeros').map((name) => ({
          kind: 'line' as const,
          x: layers,
          y: r.layers[name].map((s) => s.std),
          label: TITLES[name],
          color: TAB10[INITIALIZERS.indexOf(name)],
          marker: 'o' as const,
          dash: name.endsWith('uniform') ? ('dashed' as const) : undefined,
        })),
      },
    ],
  };
}

export function initHistogramsSummary(r: InitHistogramsResult): string[] {
  const rows = INITIALIZERS.map((name) => {
    const first = r.layers[name][0],
      lastL = r.layers[name].at(-1)!;
    const deep = r.options.layers > 1 ? `  layer ${r.options.layers} std ${sig(lastL.std).padStart(9)}` : '';
    return `${name.padEnd(16)} mean ${first.mean.toFixed(4).padStart(9)}  std ${first.std.toFixed(4).padStart(9)}  zeros ${(100 * first.zeros).toFixed(1).padStart(5)}%${deep}`;
  });
  return [`${r.options.activation}, ${r.options.layers} layer(s); layer 1 outputs:`, ...rows];
}
