// The figure renderer: scales and ticks, the font's metrics, and the SVG and PNG a figure becomes.
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { figureSvg, viridis } from '../src/plot/figure.js';
import { textWidth } from '../src/plot/font.js';
import { renderFigure } from '../src/plot/render.js';
import { makeScale } from '../src/plot/scale.js';

const values = (s: ReturnType<typeof makeScale>) => s.ticks.map((t) => t.value);

describe('scales', () => {
  it('linear: 5% margins, ticks at 1/2/2.5/5 × 10^k inside the limits, a shared factor for tiny values', () => {
    const s = makeScale([0, 10], {}, 500, 80);
    expect(s.lo).toBeCloseTo(-0.5);
    expect(s.hi).toBeCloseTo(10.5);
    expect(values(s)).toEqual([0, 2, 4, 6, 8, 10]);
    const tiny = makeScale([-3e-5, 9e-5], {}, 500, 80);
    expect(tiny.factor).toEqual({ text: '\u00d710', sup: '\u22125' });
    expect(tiny.ticks.map((t) => t.label.text)).toContain('\u22122.5'); // U+2212 minus, as matplotlib
    expect(values(makeScale([1, 7], { integer: true }, 500, 80)).every(Number.isInteger)).toBe(true);
  });

  it('log: one tick per decade labelled 10^k; symlog: 0 and ±10^k', () => {
    const s = makeScale([1e-3, 1e4], { scale: 'log' }, 500, 50);
    expect(values(s)).toEqual([1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3, 1e4]);
    expect(s.ticks[0].label).toEqual({ text: '10', sup: '\u22123' });
    expect(s.unit(1e-3)).toBeLessThan(s.unit(1));
    const sym = makeScale([-5, 0, 200], { scale: 'symlog' }, 800, 50);
    expect(values(sym)).toEqual([-1, 0, 1, 10, 100]);
    // Linear within ±1, logarithmic beyond: 0.5 sits halfway between 0 and 1, 10 one unit past 1.
    expect(sym.unit(0.5) - sym.unit(0)).toBeCloseTo((sym.unit(1) - sym.unit(0)) / 2, 10);
    expect(sym.unit(10) - sym.unit(1)).toBeCloseTo(sym.unit(1) - sym.unit(0), 10);
  });
});

describe('font and colours', () => {
  it("reads DejaVu Sans's advance widths (digits 1303/2048 em, space 651/2048 em)", () => {
    expect(textWidth('0123456789', 2048)).toBe(13030);
    expect(textWidth(' ', 2048)).toBe(651);
    expect(textWidth('σ≈₂', 100)).toBeGreaterThan(100); // non-Latin glyphs have widths too
  });
  it('viridis runs from dark purple to yellow', () => {
    expect(viridis(0)).toBe('#440154');
    expect(viridis(1)).toBe('#fde725');
    expect(viridis(0.5)).toBe('#21918c');
  });
});

describe('figures', () => {
  it('draws a grid of panels with contours, bars, lines and legends to SVG and PNG; shared axes label only the outer panels', () => {
    const n = 21;
    const xs = Array.from({ length: n }, (_, i) => -1 + (2 * i) / (n - 1));
    const z = xs.flatMap((y) => xs.map((x) => x * x + 4 * y * y));
    const fig = {
      width: 900,
      height: 600,
      title: 'A test figure',
      cols: 2,
      shareX: true,
      panels: [
        { title: 'contour', layers: [{ kind: 'contour' as const, x: xs, y: xs, z, levels: [0, 0.5, 1, 2, 4], lines: true }] },
        { title: 'bars', y: { scale: 'log' as const }, layers: [{ kind: 'bars' as const, edges: [-1, 0, 1], counts: [10, 1000] }] },
        {
          title: 'line',
          xLabel: 'x',
          layers: [{ kind: 'line' as const, x: [-1, 1], y: [0, 1], label: 'a line' }],
          legend: 'best' as const,
        },
        { title: 'empty', xLabel: 'x', layers: [] },
      ],
    };
    const svg = figureSvg(fig);
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="900" height="600"/);
    // Five contour bands in viridis, the first the darkest.
    expect(svg).toContain(`fill="${viridis(0)}"`);
    expect(svg).toContain(`fill="${viridis(1)}"`);
    expect(svg).toContain('>a line</text>');
    // x tick labels only under the bottom row (shared x).
    expect((svg.match(/>x<\/text>/g) ?? []).length).toBe(2);
    const { png, svg: outlined } = renderFigure(fig);
    const img = PNG.sync.read(png);
    expect([img.width, img.height]).toEqual([900, 600]);
    expect(outlined).not.toContain('<text'); // text turned into outlines
    // The contour panel's centre (the minimum) is dark, its corner (the maximum) light.
    const px = (x: number, y: number) => Array.from(img.data.subarray(4 * (y * 900 + x), 4 * (y * 900 + x) + 3));
    let dark = 0;
    for (let y = 0; y < 600; y++) for (let x = 0; x < 450; x++) if (px(x, y).join() === '68,1,84') dark++;
    expect(dark).toBeGreaterThan(100);
  });
});
