import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { histogram, lineChart, PALETTE, type RGB } from '../src/plot/plot.js';

function decode(buf: Buffer) {
  expect(buf.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  return PNG.sync.read(buf);
}

/** Pixels of exactly colour `c` inside the box [x0, x1) x [y0, y1). */
function count(png: PNG, c: RGB, x0 = 0, y0 = 0, x1 = png.width, y1 = png.height): number {
  let n = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      const i = (y * png.width + x) * 4;
      if (png.data[i] === c[0] && png.data[i + 1] === c[1] && png.data[i + 2] === c[2]) n++;
    }
  return n;
}

/** Pixels darker than mid-grey in every channel (text is black, anti-aliased at its edges). */
function dark(png: PNG, x0: number, y0: number, x1: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      const i = (y * png.width + x) * 4;
      if (png.data[i] < 100 && png.data[i + 1] < 100 && png.data[i + 2] < 100) n++;
    }
  return n;
}

const nonWhite = (png: PNG) => png.width * png.height - count(png, [255, 255, 255]);
const epochs = Array.from({ length: 20 }, (_, i) => i + 1);
const base = { title: 'Loss', xLabel: 'Epoch', yLabel: 'Loss' };

describe('lineChart', () => {
  it('draws a decodable PNG of the requested size with the series in the plot area', () => {
    const png = decode(
      lineChart({
        ...base,
        width: 640,
        height: 400,
        series: [
          { name: 'train', x: epochs, y: epochs.map((e) => 1 / e) },
          { name: 'val', x: epochs, y: epochs.map((e) => 1.2 / e) },
        ],
      }),
    );
    expect([png.width, png.height]).toEqual([640, 400]);
    // Both series colours appear well inside the axes, not just in the legend.
    expect(count(png, PALETTE[0], 100, 60, 600, 340)).toBeGreaterThan(200);
    expect(count(png, PALETTE[1], 100, 60, 600, 340)).toBeGreaterThan(200);
    // Title text sits in the top band.
    expect(dark(png, 0, 0, 640, 40)).toBeGreaterThan(50);
  });

  it('defaults to 800x500 and uses the given colour', () => {
    const png = decode(lineChart({ ...base, series: [{ name: 'acc', x: epochs, y: epochs, color: [200, 0, 100] }] }));
    expect([png.width, png.height]).toEqual([800, 500]);
    expect(count(png, [200, 0, 100])).toBeGreaterThan(300);
  });

  it('handles a single point, a constant series and non-finite values', () => {
    const one = decode(
      lineChart({
        ...base,
        series: [
          { name: 'train', x: [1], y: [0.5] },
          { name: 'val', x: [1], y: [NaN] },
        ],
      }),
    );
    expect(count(one, PALETTE[0], 100, 60, 700, 430)).toBeGreaterThan(20); // the marker
    const flat = decode(lineChart({ ...base, series: [{ name: 'c', x: epochs, y: epochs.map(() => 3) }] }));
    expect(count(flat, PALETTE[0], 100, 60, 700, 430)).toBeGreaterThan(300);
    const gaps = decode(
      lineChart({ ...base, series: [{ name: 'g', x: epochs, y: epochs.map((e) => (e % 5 === 0 ? NaN : e === 3 ? Infinity : e)) }] }),
    );
    expect(count(gaps, PALETTE[0], 100, 60, 700, 430)).toBeGreaterThan(100);
  });

  it('draws empty axes for no data', () => {
    for (const series of [[], [{ name: 'x', x: [], y: [] }], [{ name: 'x', x: [1, 2], y: [NaN, NaN] }]]) {
      const png = decode(lineChart({ ...base, series }));
      expect(nonWhite(png)).toBeGreaterThan(1000);
      expect(count(png, PALETTE[0], 100, 60, 700, 430)).toBeLessThan(60); // at most a legend swatch
    }
  });
});

describe('histogram', () => {
  it('draws bars and skips non-finite values', () => {
    const values = Array.from({ length: 1000 }, (_, i) => Math.sin(i) * Math.cos(i / 3));
    const png = decode(histogram({ title: 'Weights', xLabel: 'value', values: [...values, NaN, Infinity], bins: 20 }));
    expect([png.width, png.height]).toEqual([800, 500]);
    expect(count(png, PALETTE[0], 100, 60, 700, 430)).toBeGreaterThan(5000);
  });
  it('handles constant and empty input', () => {
    expect(count(decode(histogram({ title: 'c', xLabel: 'v', values: [2, 2, 2] })), PALETTE[0])).toBeGreaterThan(100);
    expect(nonWhite(decode(histogram({ title: 'e', xLabel: 'v', values: [], width: 300, height: 200 })))).toBeGreaterThan(100);
  });
});
