// Comparison and random-data helpers shared by the reference and GPU tests.
import { mulberry32 } from '../../src/util/random.js';

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  label: string;
}

// Throws unless |got[i] - expected[i]| <= atol + rtol*|expected[i]| for every i (NaN only where expected is NaN).
export function expectClose(got: ArrayLike<number>, expected: ArrayLike<number>, opts: CloseOptions): void {
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-4;
  if (got.length !== expected.length) {
    throw new Error(`${opts.label}: length mismatch, got ${got.length}, expected ${expected.length}`);
  }
  const bad: string[] = [];
  let count = 0;
  let worstIdx = -1;
  let worstExcess = -Infinity;
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const e = expected[i];
    const tol = atol + rtol * Math.abs(e);
    let excess: number;
    if (Number.isNaN(e)) {
      if (Number.isNaN(g)) continue;
      excess = Infinity;
    } else if (Number.isNaN(g)) {
      excess = Infinity;
    } else if (g === e) {
      continue; // also covers matching infinities
    } else {
      const diff = Math.abs(g - e);
      if (diff <= tol) continue;
      excess = Number.isFinite(diff) ? diff - tol : Infinity;
    }
    count++;
    if (bad.length < 10) bad.push(`  index ${i}: got ${g}, expected ${e}`);
    if (worstIdx < 0 || excess > worstExcess) {
      worstIdx = i;
      worstExcess = excess;
    }
  }
  if (count > 0) {
    const g = got[worstIdx];
    const e = expected[worstIdx];
    throw new Error(
      `${opts.label}: ${count} of ${got.length} values mismatch (atol ${atol}, rtol ${rtol}); ` +
        `worst at index ${worstIdx}: got ${g}, expected ${e}, |diff| ${Math.abs(g - e)}\n` +
        `first mismatches:\n${bad.join('\n')}`,
    );
  }
}

// n values uniform in [lo, hi), deterministic for a given seed.
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const rand = mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}

// n values uniform in [lo, hi), as float32 (the same sequence as randomArray, rounded).
export const randomF32 = (n: number, seed: number, lo = -1, hi = 1): Float32Array => Float32Array.from(randomArray(n, seed, lo, hi));

// Copy into a Float32Array (rounding to f32), e.g. for upload to the GPU.
export function toF32(a: ArrayLike<number>): Float32Array {
  return Float32Array.from(a);
}
