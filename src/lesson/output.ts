// What every experiment leaves in its output directory: its figures as PNG (and SVG, for the report) and its
// numbers as JSON. The directory is an OutputDir (src/util/output-dir.ts), opened before any work with the
// files the experiment will write declared, so a bad --out fails at once, a user's file of the same name is
// never replaced, one command at a time writes there, and every file is written atomically.
import type { Figure } from '../plot/figure.js';
import { renderFigure } from '../plot/render.js';
import { OutputDir } from '../util/output-dir.js';

export interface WrittenFigure {
  /** File name of the PNG in the output directory. */
  png: string;
  /** The SVG (text as outlines), for embedding in a page. */
  svg: string;
}

/** What an experiment writes in its directory, by name: figures (a PNG and an SVG each) and JSON files. */
export interface ExperimentFiles {
  figures: readonly string[];
  json: readonly string[];
}

/**
 * Checks, creates and locks an experiment's output directory, declaring the files writeFigure and writeJson
 * will write there for `files`: an OutputError (a file in the way, an unwritable or special location, a file
 * of the user's of the same name, another command writing there) comes here, before any work.
 */
export function openExperimentDir(path: string, command: string, { figures, json }: ExperimentFiles): OutputDir {
  const files = [...figures.flatMap((f) => [`${f}.png`, `${f}.svg`]), ...json.map((j) => `${j}.json`)];
  return OutputDir.open(path, { flag: '--out', command, files });
}

/** Writes DIR/<name>.png and DIR/<name>.svg; returns the SVG for the report. */
export function writeFigure(dir: OutputDir, name: string, fig: Figure): WrittenFigure {
  const { png, svg } = renderFigure(fig);
  dir.write(`${name}.png`, png);
  dir.write(`${name}.svg`, svg);
  return { png: `${name}.png`, svg };
}

/** Writes DIR/<name>.json (non-finite numbers as null, as JSON has no NaN). */
export function writeJson(dir: OutputDir, name: string, data: unknown): void {
  dir.write(`${name}.json`, `${JSON.stringify(data, null, 1)}\n`);
}
