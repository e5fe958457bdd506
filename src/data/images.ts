// Digit images from PNG files (grayscale, RGB or RGBA, any size), prepared the way the network saw MNIST by
// digits.ts, which the web page's drawing canvas goes through too.
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { FileFormatError, UsageError } from '../errors.js';
import { digitFromRgba } from './digits.js';

/** Reads a PNG as 28x28 floats in [0, 1], white digit on black. */
export function readDigitPng(file: string): { pixels: Float32Array; inverted: boolean } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new UsageError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let png: PNG;
  try {
    png = PNG.sync.read(bytes);
  } catch (e) {
    throw new FileFormatError(`${file}: not a PNG image (${(e as Error).message}); predict reads PNG files`);
  }
  return digitFromRgba(png.data, png.width, png.height, file);
}
