// Summary statistics of the numbers the experiments read back (in float64 on the CPU: a few thousand values).

export interface Moments {
  count: number;
  mean: number;
  std: number;
  /** Fourth standardised moment E[(x − μ)⁴]/σ⁴: 3 for a normal distribution, larger for heavy tails. */
  kurtosis: number;
  maxAbs: number;
}

export function moments(values: ArrayLike<number>): Moments {
  const n = values.length;
  let s = 0,
    maxAbs = 0;
  for (let i = 0; i < n; i++) {
    s += values[i];
    maxAbs = Math.max(maxAbs, Math.abs(values[i]));
  }
  const mean = s / n;
  let m2 = 0,
    m4 = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] - mean) ** 2;
    m2 += d;
    m4 += d * d;
  }
  m2 /= n;
  m4 /= n;
  return { count: n, mean, std: Math.sqrt(m2), kurtosis: m2 > 0 ? m4 / (m2 * m2) : Number.NaN, maxAbs };
}

/** Eigenvalues (ascending) of the symmetric 2x2 matrix [[a, b], [b, d]]. */
export function eigenvalues2(a: number, b: number, d: number): [number, number] {
  const m = (a + d) / 2,
    r = Math.hypot((a - d) / 2, b);
  return [m - r, m + r];
}

/** A number with `digits` significant digits, as a short string (for summaries and the report). */
export const sig = (v: number, digits = 3): string =>
  !Number.isFinite(v) || v === 0
    ? String(v)
    : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5
      ? String(Number(v.toPrecision(digits)))
      : v.toExponential(digits - 1);
