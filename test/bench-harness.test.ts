import { describe, expect, it } from 'vitest';
import { median, quantile } from '../src/tune/measure.js';
import { mulberry32 } from '../src/util/random.js';

describe("bench:kernels' quantiles", () => {
  it('interpolates between the nearest samples, whatever their order', () => {
    // [1, 2, 3, 4]: the quartiles lie a quarter of the way from 1 to 2 and three quarters from 3 to 4
    expect(quantile([3, 1, 4, 2], 0.25)).toBe(1.75);
    expect(quantile([3, 1, 4, 2], 0.75)).toBe(3.25);
    expect(quantile([5], 0.25)).toBe(5);
    expect(quantile([2, 9, 4], 0)).toBe(2);
    expect(quantile([2, 9, 4], 1)).toBe(9);
  });

  it('at one half is the median the tuner and the table use', () => {
    const rand = mulberry32(7);
    for (const n of [1, 2, 15, 16]) {
      const xs = Array.from({ length: n }, () => rand());
      expect(quantile(xs, 0.5)).toBeCloseTo(median(xs), 15);
    }
  });
});
