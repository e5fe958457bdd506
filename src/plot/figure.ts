// Figures as data, drawn to SVG in matplotlib's default style (DejaVu Sans 10 pt at 100 dpi, tab10 colours,
// viridis for contours, boxed axes with outward ticks, legends in a rounded white frame), so the lesson's
// pictures look like the ones a learner knows from textbooks. A Figure is a grid of panels (small multiples,
// optionally on shared axes: inner tick labels are then left out); a panel holds layers drawn in order:
// filled contours and contour lines (marching squares by d3-contour), histogram bars, lines with markers,
// points, reference lines and text. render.ts turns the SVG into PNG bytes, and into an SVG whose text is
// outlines (for pages that may lack the font).
import { contours } from 'd3-contour';
import { FONT_FAMILY, textWidth } from './font.js';
import { type AxisOptions, type Label, makeScale, type Scale, showable } from './scale.js';

/** matplotlib's "tab10" colour cycle. */
export const TAB10 = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export type Marker = 'o' | 'x' | '*' | 's';

export interface LineLayer {
  kind: 'line';
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
  width?: number;
  dash?: 'dashed' | 'dotted';
  marker?: Marker;
  markerSize?: number;
  label?: string;
}
export interface PointsLayer {
  kind: 'points';
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  marker: Marker;
  color?: string;
  size?: number;
  label?: string;
}
/** Histogram bars: counts[i] over [edges[i], edges[i+1]). */
export interface BarsLayer {
  kind: 'bars';
  edges: ArrayLike<number>;
  counts: ArrayLike<number>;
  color?: string;
  opacity?: number;
  label?: string;
}
/** z[j·nx + i] is the value at (x[i], y[j]); `levels` ascending. */
export interface ContourLayer {
  kind: 'contour';
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  z: ArrayLike<number>;
  levels: number[];
  /** Filled bands between levels (contourf) in viridis; lines (contour) in `lineColor` or viridis. */
  fill?: boolean;
  lines?: boolean;
  lineColor?: string;
}
export interface RuleLayer {
  kind: 'hline' | 'vline';
  value: number;
  color?: string;
  dash?: 'dashed' | 'dotted';
  label?: string;
}
export interface TextLayer {
  kind: 'text';
  x: number;
  y: number;
  text: string;
  color?: string;
  align?: 'left' | 'center' | 'right';
}
export type Layer = LineLayer | PointsLayer | BarsLayer | ContourLayer | RuleLayer | TextLayer;

export type Corner = 'upper right' | 'upper left' | 'lower right' | 'lower left';

export interface Panel {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  x?: AxisOptions;
  y?: AxisOptions;
  layers: Layer[];
  /** A legend of the labelled layers inside the axes ('best': the corner over the fewest drawn points). */
  legend?: Corner | 'best';
  /** Lines of text in a box inside the axes (numbers that go with the picture). */
  note?: { lines: string[]; corner?: Corner };
  grid?: boolean;
}

export interface LegendEntry {
  label: string;
  color: string;
  marker?: Marker;
  dash?: 'dashed' | 'dotted';
  swatch?: 'line' | 'box';
}

export interface Figure {
  /** Pixels (matplotlib's inches × 100 dpi). */
  width: number;
  height: number;
  title?: string;
  cols?: number;
  panels: Panel[];
  /** The same limits on every panel; tick labels only on the outer panels. */
  shareX?: boolean;
  shareY?: boolean;
  /** One legend for the whole figure, in a row under the title. */
  legend?: LegendEntry[];
}

const PT = 100 / 72;
const FONT = 10 * PT;
const TITLE = 12 * PT;
const SUPTITLE = 13 * PT;
const TICK = 3.5 * PT;
const PAD = 3.5 * PT;
const LABEL_PAD = 4 * PT;
const SPINE = 0.8 * PT;
const LINE = 1.5 * PT;
const INK = '#000000';
const GRID = '#b0b0b0';

// viridis at 0, 1/8, ..., 1 (matplotlib's); between them, linear interpolation.
const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];
export function viridis(t: number): string {
  const s = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(s));
  const a = hex(VIRIDIS[i]),
    b = hex(VIRIDIS[i + 1]);
  const f = s - i;
  return `#${a
    .map((v, k) =>
      Math.round(v + (b[k] - v) * f)
        .toString(16)
        .padStart(2, '0'),
    )
    .join('')}`;
}
const hex = (c: string) => [1, 3, 5].map((i) => Number.parseInt(c.slice(i, i + 2), 16));

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const n2 = (v: number) => (Math.round(v * 100) / 100).toString();

const labelWidth = (l: Label, size = FONT) => textWidth(l.text, size) + (l.sup ? textWidth(l.sup, size * 0.7) : 0);

/** SVG text; `anchor` the horizontal alignment, `valign` where (x, y) sits vertically on the text. */
function text(
  s: string | Label,
  x: number,
  y: number,
  o: { size?: number; anchor?: 'start' | 'middle' | 'end'; valign?: 'baseline' | 'top' | 'center'; rotate?: boolean; color?: string } = {},
): string {
  const size = o.size ?? FONT;
  const l: Label = typeof s === 'string' ? { text: s } : s;
  const dy = o.valign === 'top' ? 0.76 * size : o.valign === 'center' ? 0.36 * size : 0;
  const [tx, ty] = o.rotate ? [x + dy, y] : [x, y + dy];
  const sup = l.sup ? `<tspan dy="${n2(-0.45 * size)}" font-size="${n2(size * 0.7)}">${esc(l.sup)}</tspan>` : '';
  const rot = o.rotate ? ` transform="rotate(-90 ${n2(tx)} ${n2(ty)})"` : '';
  return `<text x="${n2(tx)}" y="${n2(ty)}" font-size="${n2(size)}" text-anchor="${o.anchor ?? 'start'}"${o.color ? ` fill="${o.color}"` : ''}${rot}>${esc(l.text)}${sup}</text>`;
}

function markerPath(m: Marker, x: number, y: number, r: number, color: string, edge = color): string {
  switch (m) {
    case 'o':
      return `<circle cx="${n2(x)}" cy="${n2(y)}" r="${n2(r)}" fill="${color}" stroke="${edge}" stroke-width="${n2(0.6 * PT)}"/>`;
    case 's':
      return `<rect x="${n2(x - r)}" y="${n2(y - r)}" width="${n2(2 * r)}" height="${n2(2 * r)}" fill="${color}" stroke="${edge}" stroke-width="${n2(0.6 * PT)}"/>`;
    case 'x':
      return `<path d="M${n2(x - r)} ${n2(y - r)}L${n2(x + r)} ${n2(y + r)}M${n2(x - r)} ${n2(y + r)}L${n2(x + r)} ${n2(y - r)}" stroke="${color}" stroke-width="${n2(1.5 * PT)}" fill="none"/>`;
    case '*': {
      const pts: string[] = [];
      for (let k = 0; k < 10; k++) {
        const a = -Math.PI / 2 + (k * Math.PI) / 5;
        const rr = k % 2 ? r * 0.45 : r * 1.25;
        pts.push(`${n2(x + rr * Math.cos(a))},${n2(y + rr * Math.sin(a))}`);
      }
      return `<polygon points="${pts.join(' ')}" fill="${color}" stroke="${edge}" stroke-width="${n2(0.6 * PT)}"/>`;
    }
  }
}
const dashArray = (d?: 'dashed' | 'dotted', w = LINE) =>
  d === 'dashed'
    ? ` stroke-dasharray="${n2(3.7 * w)} ${n2(1.6 * w)}"`
    : d === 'dotted'
      ? ` stroke-dasharray="${n2(w)} ${n2(1.65 * w)}"`
      : '';

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Every data value a layer puts on each axis (for the limits). */
function extent(l: Layer, axis: 'x' | 'y'): ArrayLike<number> {
  switch (l.kind) {
    case 'line':
    case 'points':
    case 'contour':
      return axis === 'x' ? l.x : l.y;
    case 'bars':
      return axis === 'x' ? l.edges : Array.from(l.counts).filter((c) => c > 0);
    case 'hline':
      return axis === 'y' ? [l.value] : [];
    case 'vline':
      return axis === 'x' ? [l.value] : [];
    case 'text':
      return [axis === 'x' ? l.x : l.y];
  }
}

const colorOf = (l: Layer, i: number) => ('color' in l && l.color) || TAB10[i % TAB10.length];

function legendEntries(p: Panel): LegendEntry[] {
  const out: LegendEntry[] = [];
  p.layers.forEach((l, i) => {
    if (!('label' in l) || !l.label) return;
    const color = colorOf(l, i);
    if (l.kind === 'bars') out.push({ label: l.label, color, swatch: 'box' });
    else if (l.kind === 'points') out.push({ label: l.label, color, marker: l.marker });
    else if (l.kind === 'line') out.push({ label: l.label, color, marker: l.marker, dash: l.dash, swatch: 'line' });
    else out.push({ label: l.label, color, dash: l.dash, swatch: 'line' });
  });
  return out;
}

const ROW = FONT * 1.45;
const SWATCH = 2 * FONT;

function legendSize(entries: LegendEntry[]): { w: number; h: number } {
  return {
    w: 0.7 * FONT + SWATCH + 0.8 * FONT + Math.max(...entries.map((e) => textWidth(e.label, FONT))) + 0.7 * FONT,
    h: 0.5 * FONT + entries.length * ROW,
  };
}

function legendSwatch(e: LegendEntry, x: number, cy: number): string {
  if (e.swatch === 'box')
    return `<rect x="${n2(x)}" y="${n2(cy - 0.35 * FONT)}" width="${n2(SWATCH)}" height="${n2(0.7 * FONT)}" fill="${e.color}"/>`;
  const line =
    e.swatch === 'line' || !e.marker
      ? `<path d="M${n2(x)} ${n2(cy)}H${n2(x + SWATCH)}" stroke="${e.color}" stroke-width="${n2(LINE)}"${dashArray(e.dash)}/>`
      : '';
  return line + (e.marker ? markerPath(e.marker, x + SWATCH / 2, cy, 3 * PT, e.color) : '');
}

function drawLegend(entries: LegendEntry[], x: number, y: number): string {
  const { w, h } = legendSize(entries);
  let s = `<rect x="${n2(x)}" y="${n2(y)}" width="${n2(w)}" height="${n2(h)}" rx="${n2(0.2 * FONT)}" fill="#ffffff" fill-opacity="0.8" stroke="#cccccc" stroke-width="${n2(SPINE)}"/>`;
  entries.forEach((e, i) => {
    const cy = y + 0.25 * FONT + (i + 0.5) * ROW;
    s += legendSwatch(e, x + 0.7 * FONT, cy);
    s += text(e.label, x + 0.7 * FONT + SWATCH + 0.8 * FONT, cy, { valign: 'center' });
  });
  return s;
}

function cornerRect(r: Rect, corner: Corner, w: number, h: number): Rect {
  const m = 0.5 * FONT;
  return {
    x: corner.endsWith('left') ? r.x + m : r.x + r.w - w - m,
    y: corner.startsWith('upper') ? r.y + m : r.y + r.h - h - m,
    w,
    h,
  };
}

/** The SVG document of a figure (text as <text> in DejaVu Sans). */
export function figureSvg(fig: Figure): string {
  const cols = Math.max(1, Math.min(fig.cols ?? fig.panels.length, fig.panels.length || 1));
  const rows = Math.max(1, Math.ceil(fig.panels.length / cols));
  const W = fig.width,
    H = fig.height;
  let top = 0.6 * FONT;
  const parts: string[] = [];
  if (fig.title) {
    parts.push(text(fig.title, W / 2, top, { size: SUPTITLE, anchor: 'middle', valign: 'top' }));
    top += SUPTITLE * 1.5;
  }
  if (fig.legend?.length) {
    // One row, centred.
    const widths = fig.legend.map((e) => SWATCH + 0.6 * FONT + textWidth(e.label, FONT) + 1.6 * FONT);
    let x = (W - widths.reduce((a, b) => a + b, 0)) / 2;
    const cy = top + 0.6 * FONT;
    fig.legend.forEach((e, i) => {
      parts.push(legendSwatch(e, x, cy), text(e.label, x + SWATCH + 0.6 * FONT, cy, { valign: 'center' }));
      x += widths[i];
    });
    top += 1.9 * FONT;
  }

  // Outer bands of each cell: title above; tick labels and axis label below and to the left.
  const outerX = (r: number) => !fig.shareX || r === rows - 1 || r * cols + cols > fig.panels.length - 1;
  const outerY = (c: number) => !fig.shareY || c === 0;
  const sharedData = (axis: 'x' | 'y') => fig.panels.flatMap((p) => p.layers.flatMap((l) => Array.from(extent(l, axis))));
  const shared = { x: fig.shareX ? sharedData('x') : null, y: fig.shareY ? sharedData('y') : null };
  const scaleFor = (p: Panel, axis: 'x' | 'y', length: number) => {
    const data = shared[axis] ?? p.layers.flatMap((l) => Array.from(extent(l, axis)));
    const o = (axis === 'x' ? p.x : p.y) ?? {};
    const hasBars = p.layers.some((l) => l.kind === 'bars');
    // Bars stand on the axis: no margin below them (a log axis starts just under a count of 1).
    const opts: AxisOptions = axis === 'y' && hasBars && o.min === undefined ? { ...o, min: o.scale === 'log' ? 0.6 : 0 } : o;
    return makeScale(data, opts, length, axis === 'x' ? 6 * FONT : 3.2 * FONT);
  };
  // The y tick labels' widths decide the left margins, which decide the plot heights, which decide the ticks:
  // size them at a rough height first, then again at the final height (a label may be wider there).
  const tickLabelWidths = (height: number) =>
    fig.panels.map((p) => Math.max(0, ...scaleFor(p, 'y', height).ticks.map((t) => labelWidth(t.label))));
  let yLabelW = tickLabelWidths(((H - top) / rows) * 0.7);
  const left = (c: number) => {
    if (!outerY(c)) return 0.8 * FONT;
    const inCol = fig.panels.map((p, i) => (i % cols === c && p ? yLabelW[i] : 0));
    const hasLabel = fig.panels.some((p, i) => i % cols === c && p.yLabel);
    return 0.5 * FONT + (hasLabel ? FONT * 1.2 + LABEL_PAD : 0) + Math.max(...inCol) + PAD + TICK;
  };
  const bottom = (r: number) => {
    const hasLabel = fig.panels.some((p, i) => Math.floor(i / cols) === r && p.xLabel);
    return outerX(r) ? TICK + PAD + FONT * 1.2 + (hasLabel ? LABEL_PAD + FONT * 1.3 : 0) + 0.4 * FONT : 0.9 * FONT;
  };
  const titleBand = (r: number) => (fig.panels.some((p, i) => Math.floor(i / cols) === r && p.title) ? TITLE * 1.6 : 0.5 * FONT);
  const right = 0.9 * FONT;
  const bottoms = Array.from({ length: rows }, (_, r) => bottom(r));
  const tops = Array.from({ length: rows }, (_, r) => titleBand(r));
  const plotH = (H - top - bottoms.reduce((a, b) => a + b, 0) - tops.reduce((a, b) => a + b, 0)) / rows;
  yLabelW = tickLabelWidths(Math.round(plotH)).map((w, i) => Math.max(w, yLabelW[i]));
  const lefts = Array.from({ length: cols }, (_, c) => left(c));
  const plotW = (W - lefts.reduce((a, b) => a + b, 0) - cols * right) / cols;

  parts.unshift(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  fig.panels.forEach((p, i) => {
    const c = i % cols,
      r = Math.floor(i / cols);
    const x0 = lefts.slice(0, c + 1).reduce((a, b) => a + b, 0) + c * (plotW + right);
    const y0 = top + tops.slice(0, r + 1).reduce((a, b) => a + b, 0) + r * plotH + bottoms.slice(0, r).reduce((a, b) => a + b, 0);
    const rect: Rect = { x: Math.round(x0) + 0.5, y: Math.round(y0) + 0.5, w: Math.round(plotW), h: Math.round(plotH) };
    parts.push(drawPanel(p, i, rect, scaleFor(p, 'x', rect.w), scaleFor(p, 'y', rect.h), outerX(r), outerY(c)));
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT_FAMILY}" fill="${INK}">\n${parts.join('\n')}\n</svg>\n`;
}

let clipId = 0;

function drawPanel(p: Panel, index: number, r: Rect, sx: Scale, sy: Scale, xLabels: boolean, yLabels: boolean): string {
  const X = (v: number) => r.x + sx.unit(v) * r.w;
  const Y = (v: number) => r.y + r.h - sy.unit(v) * r.h;
  const out: string[] = [];
  const id = `clip${index}-${clipId++}`;
  out.push(`<clipPath id="${id}"><rect x="${n2(r.x)}" y="${n2(r.y)}" width="${r.w}" height="${r.h}"/></clipPath>`);
  if (p.grid) {
    for (const t of sx.ticks)
      out.push(
        `<path d="M${n2(X(t.value))} ${n2(r.y)}V${n2(r.y + r.h)}" stroke="${GRID}" stroke-width="${n2(0.8 * PT)}" stroke-opacity="0.5"/>`,
      );
    for (const t of sy.ticks)
      out.push(
        `<path d="M${n2(r.x)} ${n2(Y(t.value))}H${n2(r.x + r.w)}" stroke="${GRID}" stroke-width="${n2(0.8 * PT)}" stroke-opacity="0.5"/>`,
      );
  }
  const body: string[] = [];
  const drawn: [number, number][] = []; // pixel positions of drawn data, for the legend's placement
  p.layers.forEach((l, li) => {
    const color = colorOf(l, li);
    switch (l.kind) {
      case 'contour':
        body.push(contourSvg(l, X, Y));
        break;
      case 'bars': {
        const base = sy.kind === 'log' ? sy.lo : 0;
        let d = '';
        for (let k = 0; k < l.counts.length; k++) {
          const cnt = l.counts[k];
          if (!(cnt > 0) || !showable(sy.kind, cnt)) continue;
          const xa = X(l.edges[k]),
            xb = X(l.edges[k + 1]);
          const ya = Y(cnt),
            yb = Y(base);
          d += `M${n2(xa)} ${n2(yb)}V${n2(ya)}H${n2(xb)}V${n2(yb)}Z`;
          drawn.push([(xa + xb) / 2, ya]);
        }
        body.push(`<path d="${d}" fill="${color}"${l.opacity !== undefined ? ` fill-opacity="${l.opacity}"` : ''}/>`);
        break;
      }
      case 'line': {
        let d = '';
        let pen = false;
        const pts: [number, number][] = [];
        for (let k = 0; k < Math.min(l.x.length, l.y.length); k++) {
          const ok = showable(sx.kind, l.x[k]) && showable(sy.kind, l.y[k]);
          if (!ok) {
            pen = false;
            continue;
          }
          const px = X(l.x[k]),
            py = Y(l.y[k]);
          d += `${pen ? 'L' : 'M'}${n2(px)} ${n2(py)}`;
          pen = true;
          pts.push([px, py]);
        }
        drawn.push(...pts);
        if (d)
          body.push(
            `<path d="${d}" fill="none" stroke="${color}" stroke-width="${n2(l.width ?? LINE)}" stroke-linejoin="round" stroke-linecap="round"${dashArray(l.dash, l.width)}/>`,
          );
        // A lone point has no segment to show it: give it a marker.
        const lone = pts.length === 1 && !l.marker;
        if (l.marker || lone) for (const [px, py] of pts) body.push(markerPath(l.marker ?? 'o', px, py, l.markerSize ?? 3 * PT, color));
        break;
      }
      case 'points':
        for (let k = 0; k < Math.min(l.x.length, l.y.length); k++) {
          if (!showable(sx.kind, l.x[k]) || !showable(sy.kind, l.y[k])) continue;
          drawn.push([X(l.x[k]), Y(l.y[k])]);
          body.push(markerPath(l.marker, X(l.x[k]), Y(l.y[k]), l.size ?? 4 * PT, color, '#ffffff'));
        }
        break;
      case 'hline':
      case 'vline': {
        const d = l.kind === 'hline' ? `M${n2(r.x)} ${n2(Y(l.value))}H${n2(r.x + r.w)}` : `M${n2(X(l.value))} ${n2(r.y)}V${n2(r.y + r.h)}`;
        body.push(`<path d="${d}" stroke="${l.color ?? '#555555'}" stroke-width="${n2(PT)}"${dashArray(l.dash ?? 'dashed', PT)}/>`);
        break;
      }
      case 'text':
        body.push(
          text(l.text, X(l.x), Y(l.y), {
            anchor: l.align === 'right' ? 'end' : l.align === 'center' ? 'middle' : 'start',
            valign: 'center',
            color: l.color,
          }),
        );
        break;
    }
  });
  out.push(`<g clip-path="url(#${id})">${body.join('')}</g>`);

  // Spines, ticks and labels.
  out.push(`<rect x="${n2(r.x)}" y="${n2(r.y)}" width="${r.w}" height="${r.h}" fill="none" stroke="${INK}" stroke-width="${n2(SPINE)}"/>`);
  let ticks = '';
  for (const t of sx.ticks) {
    const x = Math.round(X(t.value) - 0.5) + 0.5;
    if (x < r.x - 0.5 || x > r.x + r.w + 0.5) continue;
    ticks += `M${n2(x)} ${n2(r.y + r.h)}v${n2(TICK)}`;
    if (xLabels) out.push(text(t.label, x, r.y + r.h + TICK + PAD, { anchor: 'middle', valign: 'top' }));
  }
  for (const t of sy.ticks) {
    const y = Math.round(Y(t.value) - 0.5) + 0.5;
    if (y < r.y - 0.5 || y > r.y + r.h + 0.5) continue;
    ticks += `M${n2(r.x)} ${n2(y)}h${n2(-TICK)}`;
    if (yLabels) out.push(text(t.label, r.x - TICK - PAD, y, { anchor: 'end', valign: 'center' }));
  }
  out.push(`<path d="${ticks}" stroke="${INK}" stroke-width="${n2(SPINE)}"/>`);
  if (sy.factor && yLabels) out.push(text(sy.factor, r.x, r.y - 0.3 * FONT, { anchor: 'start' }));
  if (sx.factor && xLabels) out.push(text(sx.factor, r.x + r.w, r.y + r.h + TICK + PAD + 1.3 * FONT, { anchor: 'end', valign: 'top' }));
  if (p.title) out.push(text(p.title, r.x + r.w / 2, r.y - 0.5 * TITLE, { size: TITLE, anchor: 'middle' }));
  if (p.xLabel && xLabels)
    out.push(text(p.xLabel, r.x + r.w / 2, r.y + r.h + TICK + PAD + FONT * 1.2 + LABEL_PAD, { anchor: 'middle', valign: 'top' }));
  if (p.yLabel && yLabels) {
    const w = Math.max(0, ...sy.ticks.map((t) => labelWidth(t.label)));
    out.push(text(p.yLabel, r.x - TICK - PAD - w - LABEL_PAD - FONT * 1.0, r.y + r.h / 2, { anchor: 'middle', rotate: true }));
  }

  if (p.note?.lines.length) {
    const w = Math.max(...p.note.lines.map((s) => textWidth(s, FONT))) + FONT;
    const h = p.note.lines.length * ROW + 0.5 * FONT;
    const b = cornerRect(r, p.note.corner ?? 'upper left', w, h);
    out.push(
      `<rect x="${n2(b.x)}" y="${n2(b.y)}" width="${n2(w)}" height="${n2(h)}" rx="${n2(0.2 * FONT)}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc" stroke-width="${n2(SPINE)}"/>`,
    );
    p.note.lines.forEach((s, k) => {
      out.push(text(s, b.x + 0.5 * FONT, b.y + 0.25 * FONT + (k + 0.5) * ROW, { valign: 'center' }));
    });
  }
  const entries = legendEntries(p);
  if (p.legend && entries.length) {
    const { w, h } = legendSize(entries);
    const corners: Corner[] = p.legend === 'best' ? ['upper right', 'upper left', 'lower left', 'lower right'] : [p.legend];
    const covered = (b: Rect) => drawn.filter(([x, y]) => x >= b.x - 4 && x <= b.x + b.w + 4 && y >= b.y - 4 && y <= b.y + b.h + 4).length;
    const best = corners.map((c) => cornerRect(r, c, w, h)).reduce((a, b) => (covered(b) < covered(a) ? b : a));
    out.push(drawLegend(entries, best.x, best.y));
  }
  return out.join('\n');
}

function contourSvg(l: ContourLayer, X: (v: number) => number, Y: (v: number) => number): string {
  const nx = l.x.length,
    ny = l.y.length;
  const dx = nx > 1 ? (l.x[nx - 1] - l.x[0]) / (nx - 1) : 1;
  const dy = ny > 1 ? (l.y[ny - 1] - l.y[0]) / (ny - 1) : 1;
  // d3-contour puts sample (i, j) at grid point (i + 0.5, j + 0.5).
  const gx = (g: number) => X(l.x[0] + (g - 0.5) * dx);
  const gy = (g: number) => Y(l.y[0] + (g - 0.5) * dy);
  const gen = contours().size([nx, ny]).thresholds(l.levels).smooth(true);
  const polys = gen(Array.from(l.z));
  const span = l.levels.length > 1 ? l.levels.length - 1 : 1;
  const out: string[] = [];
  polys.forEach((mp, k) => {
    let d = '';
    for (const poly of mp.coordinates) for (const ring of poly) d += `M${ring.map(([a, b]) => `${n2(gx(a))} ${n2(gy(b))}`).join('L')}Z`;
    if (!d) return;
    // Band k (between levels k and k + 1) takes the colour of its position among the bands.
    if (l.fill ?? true) out.push(`<path d="${d}" fill="${viridis(k / span)}" fill-rule="evenodd"/>`);
    // With fills, level 0 is the base under every band: its outline is the grid's border.
    if (l.lines && !((l.fill ?? true) && k === 0))
      out.push(
        `<path d="${d}" fill="none" stroke="${l.lineColor ?? viridis(k / span)}" stroke-width="${n2(0.75 * PT)}" stroke-opacity="0.8"/>`,
      );
  });
  return out.join('');
}
