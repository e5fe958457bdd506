// A figure to PNG bytes, and to an SVG that shows the same without the font, by resvg (npm @resvg/resvg-js:
// a Rust SVG renderer shipped as a prebuilt Node addon, no browser, no system libraries) with DejaVu Sans
// loaded from its file and no system fonts, so every machine draws the same pixels.
import { Resvg } from '@resvg/resvg-js';
import { type Figure, figureSvg } from './figure.js';
import { FONT_FAMILY, FONT_FILE } from './font.js';

const OPTIONS = { font: { fontFiles: [FONT_FILE], loadSystemFonts: false, defaultFontFamily: FONT_FAMILY } };

export interface Rendered {
  /** The figure as PNG bytes, at one pixel per figure unit. */
  png: Buffer;
  /** The figure as SVG with its text turned into outlines: any page shows it the same, with or without DejaVu Sans. */
  svg: string;
}

/** Draws an SVG document (as figureSvg writes them). */
export function renderSvg(svg: string): Rendered {
  const r = new Resvg(svg, OPTIONS);
  return { png: r.render().asPng(), svg: r.toString() };
}

export function renderFigure(fig: Figure): Rendered {
  return renderSvg(figureSvg(fig));
}

/** The figure as PNG bytes. */
export const figurePng = (fig: Figure): Buffer => renderFigure(fig).png;
