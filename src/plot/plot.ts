// The two plain charts the training program and older commands draw (a line chart, a histogram), as PNG
// bytes: one-panel figures (figure.ts) rendered by render.ts.
import type { Layer } from './figure.js';
import { figurePng } from './render.js';

export type RGB = [number, number, number];

export interface Series {
  name: string;
  x: number[];
  y: number[];
  color?: RGB;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
}

export interface HistogramOptions {
  title: string;
  xLabel: string;
  yLabel?: string;
  values: number[];
  bins?: number;
  color?: RGB;
  width?: number;
  height?: number;
}

/** matplotlib's "tab10" colour cycle, as RGB triples. */
export const PALETTE: RGB[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

export const rgbHex = (c: RGB) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;

/** A line chart of one or more series as PNG bytes. Points with a non-finite x or y are skipped (the line breaks there). */
export function lineChart(opts: LineChartOptions): Buffer {
  const points = opts.series.reduce((n, s) => n + s.x.filter((x, k) => Number.isFinite(x) && Number.isFinite(s.y[k])).length, 0);
  const xs = opts.series.flatMap((s) => s.x.filter(Number.isFinite));
  const layers: Layer[] = opts.series.map((s, i) => ({
    kind: 'line',
    x: s.x,
    y: s.y,
    label: s.name,
    color: rgbHex(s.color ?? PALETTE[i % PALETTE.length]),
    // Markers keep short runs visible (a few epochs).
    marker: s.x.length <= 30 ? 'o' : undefined,
  }));
  if (points === 0) layers.push({ kind: 'text', x: 0.5, y: 0.5, text: 'no data', color: '#999999', align: 'center' });
  return figurePng({
    width: opts.width ?? 800,
    height: opts.height ?? 500,
    panels: [
      {
        title: opts.title,
        xLabel: opts.xLabel,
        yLabel: opts.yLabel,
        x: { integer: xs.length > 0 && xs.every(Number.isInteger) },
        layers,
        legend: 'best',
        grid: true,
      },
    ],
  });
}

/** Counts of the finite `values` in `bins` equal bins over their range. */
export function histogramCounts(values: ArrayLike<number>, bins: number, range?: [number, number]): { edges: number[]; counts: number[] } {
  let lo = range?.[0] ?? Infinity,
    hi = range?.[1] ?? -Infinity;
  if (!range)
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  if (!(lo <= hi)) [lo, hi] = [0, 1];
  if (hi === lo) [lo, hi] = [lo - 0.5, hi + 0.5];
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v) || v < lo || v > hi) continue;
    counts[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))]++;
  }
  return { edges: Array.from({ length: bins + 1 }, (_, k) => lo + ((hi - lo) * k) / bins), counts };
}

/** A histogram of the finite `values` as PNG bytes. */
export function histogram(opts: HistogramOptions): Buffer {
  const { edges, counts } = histogramCounts(opts.values, Math.max(1, Math.floor(opts.bins ?? 30)));
  const layers: Layer[] = [{ kind: 'bars', edges, counts, color: rgbHex(opts.color ?? PALETTE[0]) }];
  if (!opts.values.some(Number.isFinite)) layers.push({ kind: 'text', x: 0.5, y: 0.5, text: 'no data', color: '#999999', align: 'center' });
  return figurePng({
    width: opts.width ?? 800,
    height: opts.height ?? 500,
    panels: [{ title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel ?? 'Frequency', layers, y: { min: 0 } }],
  });
}
