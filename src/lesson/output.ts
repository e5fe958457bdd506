// What every experiment leaves in its output directory: its figures as PNG (and SVG, for the report) and its
// numbers as JSON, each file written atomically.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Figure } from '../plot/figure.js';
import { renderFigure } from '../plot/render.js';
import { writeFileAtomic } from '../util/files.js';

export interface WrittenFigure {
  /** File name of the PNG in the output directory. */
  png: string;
  /** The SVG (text as outlines), for embedding in a page. */
  svg: string;
}

/** Writes DIR/<name>.png and DIR/<name>.svg; returns the SVG for the report. */
export function writeFigure(dir: string, name: string, fig: Figure): WrittenFigure {
  mkdirSync(dir, { recursive: true });
  const { png, svg } = renderFigure(fig);
  writeFileAtomic(join(dir, `${name}.png`), png);
  writeFileAtomic(join(dir, `${name}.svg`), svg);
  return { png: `${name}.png`, svg };
}

/** Writes DIR/<name>.json (non-finite numbers as null, as JSON has no NaN). */
export function writeJson(dir: string, name: string, data: unknown): void {
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, `${name}.json`), `${JSON.stringify(data, null, 1)}\n`);
}
