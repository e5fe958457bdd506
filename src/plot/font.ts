// The figures' one font, DejaVu Sans (matplotlib's default), shipped as a TrueType file by the npm package
// `dejavu-fonts-ttf`, so text looks the same on every machine and needs no system fonts. The renderer
// (render.ts) hands the file to resvg; the layout (figure.ts) needs only the advance widths, read here from
// the font's own tables (cmap format 4 → glyph, hmtx → advance; no kerning, which moves a label by < 1 px).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export const FONT_FAMILY = 'DejaVu Sans';
/** The font file's path, for the rasteriser. */
export const FONT_FILE = createRequire(import.meta.url).resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf');

interface Metrics {
  unitsPerEm: number;
  advance: (codePoint: number) => number;
}

let metrics: Metrics | null = null;

function readMetrics(): Metrics {
  const f = readFileSync(FONT_FILE);
  const tables = new Map<string, number>();
  for (let i = 0, n = f.readUInt16BE(4); i < n; i++) {
    const rec = 12 + 16 * i;
    tables.set(f.toString('latin1', rec, rec + 4), f.readUInt32BE(rec + 8));
  }
  const table = (tag: string) => {
    const at = tables.get(tag);
    if (at === undefined) throw new Error(`${FONT_FILE}: no ${tag} table`);
    return at;
  };
  const unitsPerEm = f.readUInt16BE(table('head') + 18);
  const numberOfHMetrics = f.readUInt16BE(table('hhea') + 34);
  const hmtx = table('hmtx');
  const advanceOf = (glyph: number) => f.readUInt16BE(hmtx + 4 * Math.min(glyph, numberOfHMetrics - 1));
  // The Windows Unicode BMP subtable (platform 3, encoding 1), format 4: segments of code points.
  const cmap = table('cmap');
  let sub = -1;
  for (let i = 0, n = f.readUInt16BE(cmap + 2); i < n; i++) {
    const rec = cmap + 4 + 8 * i;
    if (f.readUInt16BE(rec) === 3 && f.readUInt16BE(rec + 2) === 1) sub = cmap + f.readUInt32BE(rec + 4);
  }
  if (sub < 0 || f.readUInt16BE(sub) !== 4) throw new Error(`${FONT_FILE}: no Unicode BMP cmap (format 4)`);
  const segX2 = f.readUInt16BE(sub + 6);
  const ends = sub + 14,
    starts = ends + segX2 + 2,
    deltas = starts + segX2,
    offsets = deltas + segX2;
  const glyphOf = (cp: number): number => {
    for (let s = 0; s < segX2; s += 2) {
      if (f.readUInt16BE(ends + s) < cp) continue;
      const start = f.readUInt16BE(starts + s);
      if (start > cp) return 0;
      const delta = f.readUInt16BE(deltas + s);
      const ro = f.readUInt16BE(offsets + s);
      if (ro === 0) return (cp + delta) & 0xffff;
      const g = f.readUInt16BE(offsets + s + ro + 2 * (cp - start));
      return g === 0 ? 0 : (g + delta) & 0xffff;
    }
    return 0;
  };
  const cache = new Map<number, number>();
  return {
    unitsPerEm,
    advance: (cp) => {
      let a = cache.get(cp);
      if (a === undefined) {
        a = advanceOf(cp > 0xffff ? 0 : glyphOf(cp));
        cache.set(cp, a);
      }
      return a;
    },
  };
}

/** Width in pixels of `text` set in DejaVu Sans at `size` pixels. */
export function textWidth(text: string, size: number): number {
  metrics ??= readMetrics();
  let units = 0;
  for (const ch of text) units += metrics.advance(ch.codePointAt(0)!);
  return (units * size) / metrics.unitsPerEm;
}
