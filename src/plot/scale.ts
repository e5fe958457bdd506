// Axis scales and their ticks, after matplotlib's: linear (limits padded by 5% of the data span, ticks at
// 1, 2, 2.5 or 5 × 10^k chosen for the axis length, labels with just the decimals the step needs and a
// shared ×10^k factor for very large or small values), log (a tick per decade, labelled 10^k; every n-th
// decade when there are many; 2 and 5 between when there are few), and symlog (linear within ±1, log
// beyond: for values that are mostly small but reach far, such as ReLU outputs under different initialisers).

export type ScaleKind = 'linear' | 'log' | 'symlog';

export interface AxisOptions {
  scale?: ScaleKind;
  /** Fixed limits (data units); by default the data range plus `margin`. */
  min?: number;
  max?: number;
  /** Padding as a fraction of the (transformed) data span on each side; default 0.05, as matplotlib. */
  margin?: number;
  /** Ticks only at integers (epochs, steps). */
  integer?: boolean;
}

/** A tick label: plain text, or a base with a superscript (10^k). */
export interface Label {
  text: string;
  sup?: string;
}

export interface Tick {
  value: number;
  label: Label;
}

export interface Scale {
  kind: ScaleKind;
  lo: number;
  hi: number;
  /** Data value → [0, 1] along the axis. */
  unit: (v: number) => number;
  ticks: Tick[];
  /** A factor shared by every tick label ("×10^−3" at the end of the axis), or null. */
  factor: Label | null;
}

const MINUS = '\u2212';
const minus = (s: string) => s.replace(/^-/, MINUS);

const forward = (kind: ScaleKind) =>
  kind === 'log'
    ? (v: number) => Math.log10(v)
    : kind === 'symlog'
      ? (v: number) => (Math.abs(v) <= 1 ? v : Math.sign(v) * (1 + Math.log10(Math.abs(v))))
      : (v: number) => v;
const inverse = (kind: ScaleKind) =>
  kind === 'log'
    ? (t: number) => 10 ** t
    : kind === 'symlog'
      ? (t: number) => (Math.abs(t) <= 1 ? t : Math.sign(t) * 10 ** (Math.abs(t) - 1))
      : (t: number) => t;

/** The values a scale can show (positive ones on a log axis). */
export const showable = (kind: ScaleKind, v: number) => Number.isFinite(v) && (kind !== 'log' || v > 0);

/**
 * A scale over the data values `data` (non-showable ones ignored) for an axis `length` pixels long whose
 * tick labels are about `labelSpace` pixels apart at least.
 */
export function makeScale(data: Iterable<number>, o: AxisOptions, length: number, labelSpace: number): Scale {
  const kind = o.scale ?? 'linear';
  const f = forward(kind),
    inv = inverse(kind);
  let lo = Infinity,
    hi = -Infinity;
  for (const v of data)
    if (showable(kind, v)) {
      const t = f(v);
      if (t < lo) lo = t;
      if (t > hi) hi = t;
    }
  if (!(lo <= hi)) [lo, hi] = kind === 'log' ? [0, 1] : [0, 1];
  if (hi === lo) {
    const d = kind === 'linear' ? Math.abs(lo) * 0.1 || 0.5 : 0.5;
    lo -= d;
    hi += d;
  } else {
    const m = (hi - lo) * (o.margin ?? 0.05);
    lo -= m;
    hi += m;
  }
  if (o.min !== undefined) lo = f(o.min);
  if (o.max !== undefined) hi = f(o.max);
  const unit = (v: number) => (f(v) - lo) / (hi - lo);
  // Decade labels (10², 10⁶) are short: a log axis fits more of them.
  const maxTicks = Math.max(2, Math.floor((kind === 'linear' ? 1 : 1.7) * (length / labelSpace)));
  if (kind === 'linear') {
    const { ticks, factor } = linearTicks(lo, hi, maxTicks, o.integer ?? false);
    return { kind, lo: inv(lo), hi: inv(hi), unit, ticks, factor };
  }
  return { kind, lo: inv(lo), hi: inv(hi), unit, ticks: logTicks(kind, lo, hi, maxTicks), factor: null };
}

function linearTicks(lo: number, hi: number, maxTicks: number, integer: boolean): { ticks: Tick[]; factor: Label | null } {
  const raw = (hi - lo) / maxTicks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = ([1, 2, 2.5, 5, 10].find((s) => s * mag >= raw * (1 - 1e-9)) ?? 10) * mag;
  if (integer && step < 1) step = 1;
  if (integer && !Number.isInteger(step)) step = Math.ceil(step);
  const eps = step * 1e-9;
  const values: number[] = [];
  for (let k = Math.ceil((lo - eps) / step); k * step <= hi + eps; k++) values.push(Math.abs(k * step) < eps ? 0 : k * step);
  const maxAbs = Math.max(...values.map(Math.abs), 0);
  // matplotlib switches to a shared factor outside 1e-4..1e5 (axes.formatter.limits −5, 6; here a little earlier).
  const exp = maxAbs > 0 && (maxAbs < 1e-3 || maxAbs >= 1e5) ? Math.floor(Math.log10(maxAbs)) : 0;
  const scale = 10 ** exp;
  const decimals = Math.max(0, -Math.floor(Math.log10(step / scale) + 1e-9) + (/^(25|2\.5)/.test(String(step / mag)) ? 1 : 0));
  const ticks = values.map((v) => ({ value: v, label: { text: minus((v / scale).toFixed(decimals)) } }));
  return { ticks, factor: exp === 0 ? null : { text: '\u00d710', sup: minus(String(exp)) } };
}

function logTicks(kind: ScaleKind, lo: number, hi: number, maxTicks: number): Tick[] {
  const dec = (k: number): Label => ({ text: '10', sup: minus(String(k)) });
  if (kind === 'symlog') {
    // 0 and ±10^k (k ≥ 0), every n-th decade when there are many (then ±10^0, next to 0, is left out).
    const top = Math.floor(Math.max(Math.abs(lo), Math.abs(hi)) - 1 + 1e-9);
    const every = Math.max(1, Math.ceil((top + 1) / Math.max(1, maxTicks - 1)));
    const ticks: Tick[] = [];
    const keep = (k: number) => k % every === 0 && (every === 1 || k > 0);
    for (let k = top; k >= 0; k--)
      if (keep(k) && -(1 + k) >= lo - 1e-9) ticks.push({ value: -(10 ** k), label: { ...dec(k), text: `${MINUS}10` } });
    if (lo <= 0 && hi >= 0) ticks.push({ value: 0, label: { text: '0' } });
    for (let k = 0; 1 + k <= hi + 1e-9; k++) if (keep(k)) ticks.push({ value: 10 ** k, label: dec(k) });
    return ticks;
  }
  const k0 = Math.ceil(lo - 1e-9),
    k1 = Math.floor(hi + 1e-9);
  const decades = k1 - k0 + 1;
  if (decades >= 2) {
    const every = Math.max(1, Math.ceil(decades / maxTicks));
    const ticks: Tick[] = [];
    for (let k = k0; k <= k1; k++) if (k % every === 0) ticks.push({ value: 10 ** k, label: dec(k) });
    return ticks;
  }
  // Less than two decades: 1, 2 and 5 × 10^k, labelled plainly.
  const ticks: Tick[] = [];
  for (let k = Math.floor(lo) - 1; k <= Math.ceil(hi); k++)
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** k;
      const t = Math.log10(v);
      if (t >= lo - 1e-9 && t <= hi + 1e-9) ticks.push({ value: v, label: { text: minus(formatPlain(v)) } });
    }
  return ticks;
}

/** A number in the fewest characters that still tell it apart: 0.002, 250, 1.5e−07. */
export function formatPlain(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(3)));
  return minus(v.toExponential(1).replace('e', 'e').replace('e-', `e${MINUS}`).replace('e+', 'e'));
}
