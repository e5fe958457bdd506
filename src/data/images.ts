// Digit images from PNG files (grayscale, RGB or RGBA, any size), prepared the way the network saw MNIST by
// digits.ts, which the web page's drawing canvas goes through too.
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { FileFormatError, UsageError } from '../errors.js';
import { systemReason } from '../util/system-error.js';
import { digitFromRgba } from './digits.js';

const MAX_PIXELS = 64 * 1024 * 1024;

/** Reads a PNG as 28x28 floats in [0, 1], white digit on black. */
export function readDigitPng(file: string): { pixels: Float32Array; inverted: boolean } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new UsageError(`${file}: cannot read it: ${systemReason(e)}`);
  }
  // The header's size, before decoding: a PNG that claims billions of pixels must not exhaust memory.
  if (bytes.length >= 24 && bytes.toString('latin1', 12, 16) === 'IHDR') {
    const [width, height] = [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
    if (width * height > MAX_PIXELS) {
      throw new FileFormatError(`${file}: a ${width}x${height} image is too large to read (more than ${MAX_PIXELS} pixels); scale it down`);
    }
  }
  let png: PNG;
  try {
    png = PNG.sync.read(bytes);
  } catch (e) {
    throw new FileFormatError(`${file}: not a PNG image (${(e as Error).message}); predict reads PNG files`);
  }
  return digitFromRgba(png.data, png.width, png.height, file);
}
