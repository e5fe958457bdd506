// PNG charts (line charts and histograms) rasterised directly into a pngjs buffer, styled after
// matplotlib's defaults: white background, boxed axes, 1/2/5 ticks, light grid, legend.
// Text uses the built-in 5x7 bitmap font, so the only dependency is pngjs.
import { PNG } from 'pngjs';
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyph } from './font.js';

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

/** matplotlib's "tab10" colour cycle. */
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

const INK: RGB = [34, 34, 34];
const GRID: RGB = [222, 222, 222];
const WHITE: RGB = [255, 255, 255];
const CHAR_ADVANCE = GLYPH_WIDTH + 1;

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

class Canvas {
  readonly png: PNG;
  clip: Rect | null = null;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.png = new PNG({ width, height });
    this.png.data.fill(255);
  }
  px(x: number, y: number, c: RGB): void {
    x = Math.floor(x);
    y = Math.floor(y);
    const k = this.clip;
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    if (k && (x < k.x || y < k.y || x >= k.x + k.w || y >= k.y + k.h)) return;
    const i = (y * this.width + x) * 4;
    this.png.data[i] = c[0];
    this.png.data[i + 1] = c[1];
    this.png.data[i + 2] = c[2];
    this.png.data[i + 3] = 255;
  }
  fill(x: number, y: number, w: number, h: number, c: RGB): void {
    for (let j = Math.round(y); j < Math.round(y + h); j++) for (let i = Math.round(x); i < Math.round(x + w); i++) this.px(i, j, c);
  }
  stroke(r: Rect, c: RGB): void {
    this.fill(r.x, r.y, r.w, 1, c);
    this.fill(r.x, r.y + r.h - 1, r.w, 1, c);
    this.fill(r.x, r.y, 1, r.h, c);
    this.fill(r.x + r.w - 1, r.y, 1, r.h, c);
  }
  /** A 2px-wide line: a 2x2 stamp every half pixel along the segment. */
  line(x0: number, y0: number, x1: number, y1: number, c: RGB): void {
    const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) * 2));
    for (let s = 0; s <= steps; s++) {
      const x = x0 + ((x1 - x0) * s) / steps - 0.5,
        y = y0 + ((y1 - y0) * s) / steps - 0.5;
      this.fill(Math.round(x), Math.round(y), 2, 2, c);
    }
  }
  disc(cx: number, cy: number, r: number, c: RGB): void {
    for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r + r) this.px(cx + dx, cy + dy, c);
  }
  /** Draws `s` with its top-left (after alignment) at (x, y); `vertical` rotates it to read bottom-to-top. */
  text(
    s: string,
    x: number,
    y: number,
    o: { scale?: number; color?: RGB; align?: 'left' | 'center' | 'right'; vertical?: boolean } = {},
  ): void {
    const scale = o.scale ?? 1,
      color = o.color ?? INK,
      w = textWidth(s, scale);
    const shift = o.align === 'center' ? w / 2 : o.align === 'right' ? w : 0;
    x = Math.round(o.vertical ? x : x - shift);
    y = Math.round(o.vertical ? y + shift : y);
    for (let ci = 0; ci < s.length; ci++) {
      const cols = glyph(s[ci]);
      for (let col = 0; col < GLYPH_WIDTH; col++) {
        for (let row = 0; row < GLYPH_HEIGHT; row++) {
          if (!((cols[col] >> row) & 1)) continue;
          const u = (ci * CHAR_ADVANCE + col) * scale,
            v = row * scale;
          if (o.vertical) this.fill(x + v, y - u - scale, scale, scale, color);
          else this.fill(x + u, y + v, scale, scale, color);
        }
      }
    }
  }
  encode(): Buffer {
    return PNG.sync.write(this.png);
  }
}

const textWidth = (s: string, scale = 1) => (s.length > 0 ? (s.length * CHAR_ADVANCE - 1) * scale : 0);

interface Axis {
  lo: number;
  hi: number;
  step: number;
  ticks: number[];
}

/** Axis limits padded by 5% of the data span (as matplotlib does) and ticks at multiples of 1, 2 or 5 x 10^k. */
function niceAxis(min: number, max: number, maxTicks: number, integer: boolean, pad = 0.05): Axis {
  let lo = min,
    hi = max;
  if (!(hi > lo)) {
    const d = integer ? 1 : Math.abs(lo) * 0.1 || 0.5;
    lo -= d;
    hi += d;
  } else {
    const p = (hi - lo) * pad;
    lo -= p;
    hi += p;
  }
  const raw = (hi - lo) / Math.max(1, maxTicks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  let step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
  if (integer && step < 1) step = 1;
  const ticks: number[] = [];
  const eps = step * 1e-9;
  for (let k = Math.ceil((lo - eps) / step); k * step <= hi + eps; k++) ticks.push(k * step);
  return { lo, hi, step, ticks };
}

/** Tick label with just enough decimals for the step; scientific notation for very large or small values. */
function formatTick(v: number, step: number, maxAbs: number): string {
  if (Math.abs(v) < step * 1e-6) v = 0; // avoid "-0.0" and 1e-17 from accumulated float error
  const stepExp = Math.floor(Math.log10(step) + 1e-9);
  if (maxAbs >= 1e6 || stepExp < -4) {
    if (v === 0) return '0';
    return v.toExponential(Math.max(0, Math.floor(Math.log10(Math.abs(v)) + 1e-9) - stepExp)).replace('e+', 'e');
  }
  return v.toFixed(Math.max(0, -stepExp));
}

interface Frame {
  plot: Rect;
  xAxis: Axis;
  yAxis: Axis;
  sx: (v: number) => number;
  sy: (v: number) => number;
}

/** Draws title, axes box, grid, ticks and labels, and returns the data-to-pixel mapping. */
function drawFrame(
  cv: Canvas,
  o: { title: string; xLabel: string; yLabel: string },
  xr: [number, number],
  yr: [number, number],
  xInt: boolean,
  yInt: boolean,
  yPad = 0.05,
): Frame {
  const W = cv.width,
    H = cv.height;
  const top = 16 + 14 + 16,
    bottom = 12 + 7 + 12 + 7 + 14,
    right = 24;
  const plotH = H - top - bottom;
  const yAxis = niceAxis(yr[0], yr[1], Math.max(2, Math.floor(plotH / 50)), yInt, yPad);
  const yMaxAbs = Math.max(Math.abs(yAxis.lo), Math.abs(yAxis.hi));
  const yLabels = yAxis.ticks.map((t) => formatTick(t, yAxis.step, yMaxAbs));
  const left = 12 + 7 + 12 + Math.max(...yLabels.map((s) => textWidth(s)), 0) + 6 + 5;
  const plot: Rect = { x: left, y: top, w: W - left - right, h: plotH };
  let xAxis: Axis, xLabels: string[];
  // Fewer x ticks until their labels no longer collide.
  for (let n = Math.max(2, Math.floor(plot.w / 70)); ; n--) {
    xAxis = niceAxis(xr[0], xr[1], n, xInt);
    const a = xAxis;
    xLabels = a.ticks.map((t) => formatTick(t, a.step, Math.max(Math.abs(a.lo), Math.abs(a.hi))));
    const need = Math.max(...xLabels.map((s) => textWidth(s)), 0) + 14;
    if (n <= 2 || (plot.w * a.step) / (a.hi - a.lo) >= need) break;
  }
  const sx = (v: number) => plot.x + ((v - xAxis.lo) / (xAxis.hi - xAxis.lo)) * (plot.w - 1);
  const sy = (v: number) => plot.y + plot.h - 1 - ((v - yAxis.lo) / (yAxis.hi - yAxis.lo)) * (plot.h - 1);

  xAxis.ticks.forEach((t, i) => {
    const x = Math.round(sx(t));
    cv.fill(x, plot.y, 1, plot.h, GRID);
    cv.fill(x, plot.y + plot.h, 1, 5, INK);
    cv.text(xLabels[i], x + 1, plot.y + plot.h + 9, { align: 'center' });
  });
  yAxis.ticks.forEach((t, i) => {
    const y = Math.round(sy(t));
    cv.fill(plot.x, y, plot.w, 1, GRID);
    cv.fill(plot.x - 5, y, 5, 1, INK);
    cv.text(yLabels[i], plot.x - 9, y - 3, { align: 'right' });
  });
  cv.stroke(plot, INK);
  // A title too long for double size is drawn at single size rather than clipped.
  cv.text(o.title, W / 2, 16, { scale: textWidth(o.title, 2) <= W - 16 ? 2 : 1, align: 'center' });
  cv.text(o.xLabel, plot.x + plot.w / 2, H - 14 - 7, { align: 'center' });
  cv.text(o.yLabel, 12, plot.y + plot.h / 2, { align: 'center', vertical: true });
  return { plot, xAxis, yAxis, sx, sy };
}

function finiteRange(values: Iterable<number>): [number, number] | null {
  let lo = Infinity,
    hi = -Infinity;
  for (const v of values)
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  return lo <= hi ? [lo, hi] : null;
}

function noData(cv: Canvas, plot: Rect): void {
  cv.text('no data', plot.x + plot.w / 2, plot.y + plot.h / 2 - 7, { scale: 2, align: 'center', color: [150, 150, 150] });
}

/** A line chart of one or more series as PNG bytes. Points with a non-finite x or y are skipped (the line breaks there). */
export function lineChart(opts: LineChartOptions): Buffer {
  const cv = new Canvas(opts.width ?? 800, opts.height ?? 500);
  const series = opts.series.map((s, i) => {
    const n = Math.min(s.x.length, s.y.length);
    const pts: ([number, number] | null)[] = [];
    for (let k = 0; k < n; k++) pts.push(Number.isFinite(s.x[k]) && Number.isFinite(s.y[k]) ? [s.x[k], s.y[k]] : null);
    return { name: s.name, color: s.color ?? PALETTE[i % PALETTE.length], pts };
  });
  const valid = series.flatMap((s) => s.pts.filter((p): p is [number, number] => p !== null));
  const xr = finiteRange(valid.map((p) => p[0])) ?? [0, 1];
  const yr = finiteRange(valid.map((p) => p[1])) ?? [0, 1];
  const xInt = valid.length > 0 && valid.every((p) => Number.isInteger(p[0]));
  const { plot, sx, sy } = drawFrame(cv, { title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel }, xr, yr, xInt, false);
  if (valid.length === 0) noData(cv, plot);

  cv.clip = { x: plot.x + 1, y: plot.y + 1, w: plot.w - 2, h: plot.h - 2 };
  const samples: [number, number][] = [];
  for (const s of series) {
    const few = s.pts.filter(Boolean).length <= 30;
    s.pts.forEach((p, k) => {
      if (!p) return;
      const prev = s.pts[k - 1],
        next = s.pts[k + 1];
      const [x, y] = [sx(p[0]), sy(p[1])];
      if (prev) {
        const [px, py] = [sx(prev[0]), sy(prev[1])];
        cv.line(px, py, x, y, s.color);
        for (let t = 1; t < 8; t++) samples.push([px + ((x - px) * t) / 8, py + ((y - py) * t) / 8]);
      }
      // Markers keep short runs and isolated points (e.g. a single epoch) visible.
      if (few || (!prev && !next)) cv.disc(Math.round(x), Math.round(y), 3, s.color);
      samples.push([x, y]);
    });
  }
  cv.clip = null;
  drawLegend(
    cv,
    plot,
    series.filter((s) => s.name),
    samples,
  );
  return cv.encode();
}

/** Legend box in whichever plot corner covers the fewest drawn points. */
function drawLegend(cv: Canvas, plot: Rect, entries: { name: string; color: RGB }[], samples: [number, number][]): void {
  if (entries.length === 0) return;
  const w = 8 + 22 + 6 + Math.max(...entries.map((e) => textWidth(e.name))) + 8,
    h = 6 + entries.length * 15 + 3,
    m = 10;
  const corners: Rect[] = [
    { x: plot.x + plot.w - w - m, y: plot.y + m, w, h },
    { x: plot.x + m, y: plot.y + m, w, h },
    { x: plot.x + plot.w - w - m, y: plot.y + plot.h - h - m, w, h },
    { x: plot.x + m, y: plot.y + plot.h - h - m, w, h },
  ];
  const covered = (r: Rect) => samples.filter(([x, y]) => x >= r.x - 4 && x <= r.x + r.w + 4 && y >= r.y - 4 && y <= r.y + r.h + 4).length;
  const box = corners.reduce((best, r) => (covered(r) < covered(best) ? r : best));
  cv.fill(box.x, box.y, box.w, box.h, WHITE);
  cv.stroke(box, [204, 204, 204]);
  entries.forEach((e, i) => {
    const cy = box.y + 6 + i * 15 + 3;
    cv.line(box.x + 8, cy + 0.5, box.x + 30, cy + 0.5, e.color);
    cv.text(e.name, box.x + 36, cy - 3);
  });
}

/** A histogram of the finite `values` as PNG bytes. */
export function histogram(opts: HistogramOptions): Buffer {
  const cv = new Canvas(opts.width ?? 800, opts.height ?? 500);
  const values = opts.values.filter(Number.isFinite);
  const bins = Math.max(1, Math.floor(opts.bins ?? 30));
  let [lo, hi] = finiteRange(values) ?? [0, 1];
  if (hi === lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))]++;
  const frame = drawFrame(
    cv,
    { title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel ?? 'Frequency' },
    [lo, hi],
    [0, Math.max(1, ...counts) * 1.05],
    false,
    true,
    0,
  );
  const { plot, sx, sy } = frame;
  if (values.length === 0) {
    noData(cv, plot);
    return cv.encode();
  }
  // The count axis starts at exactly 0 so bars stand on the axis.
  const color = opts.color ?? PALETTE[0];
  cv.clip = { x: plot.x + 1, y: plot.y + 1, w: plot.w - 2, h: plot.h - 2 };
  counts.forEach((c, b) => {
    if (c === 0) return;
    const x0 = Math.round(sx(lo + ((hi - lo) * b) / bins)),
      x1 = Math.round(sx(lo + ((hi - lo) * (b + 1)) / bins));
    const yTop = Math.round(sy(c)),
      yBase = Math.round(sy(0));
    cv.fill(x0, yTop, Math.max(1, x1 - x0), yBase - yTop + 1, color);
    if (x1 - x0 >= 4) cv.fill(x1 - 1, yTop, 1, yBase - yTop + 1, WHITE);
  });
  cv.clip = null;
  cv.stroke(plot, INK);
  return cv.encode();
}
