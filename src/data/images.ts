// Digit images from PNG files, prepared the way the network saw MNIST: grayscale, RGB or RGBA PNGs of any
// size are converted to gray (transparency composited over white), resized to 28x28 by area averaging,
// and inverted when the background is light (MNIST digits are white on black).
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { FileFormatError, UsageError } from '../errors.js';
import { systemReason } from '../util/system-error.js';

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
  const { width, height, data } = png;
  if (width < 1 || height < 1) throw new FileFormatError(`${file}: empty image`);
  // Gray in [0, 1], compositing transparency over white (as a viewer shows it).
  const gray = new Float32Array(width * height);
  for (let i = 0; i < gray.length; i++) {
    const a = data[4 * i + 3] / 255;
    const lum = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
    gray[i] = lum * a + (1 - a);
  }
  const out = new Float32Array(28 * 28);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      // Area average of the source pixels under output pixel (x, y).
      const x0 = (x * width) / 28,
        x1 = ((x + 1) * width) / 28,
        y0 = (y * height) / 28,
        y1 = ((y + 1) * height) / 28;
      let sum = 0,
        area = 0;
      for (let sy = Math.floor(y0); sy < Math.ceil(y1); sy++) {
        const wy = Math.min(y1, sy + 1) - Math.max(y0, sy);
        for (let sx = Math.floor(x0); sx < Math.ceil(x1); sx++) {
          const w = wy * (Math.min(x1, sx + 1) - Math.max(x0, sx));
          sum += w * gray[sy * width + sx];
          area += w;
        }
      }
      out[y * 28 + x] = sum / area;
    }
  }
  // Border pixels tell the background: light means a dark digit on paper, so invert.
  let border = 0;
  for (let i = 0; i < 28; i++) border += out[i] + out[27 * 28 + i] + out[i * 28] + out[i * 28 + 27];
  const inverted = border / (4 * 28) > 0.5;
  if (inverted) for (let i = 0; i < out.length; i++) out[i] = 1 - out[i];
  return { pixels: out, inverted };
}

/** Stacks 28x28 images into one [N*784] batch, each pixel v as (v - mean) / std (the run's normalisation). */
export function normalizedBatch(images: Float32Array[], norm: { mean: number; std: number }): Float32Array {
  const { mean, std } = norm;
  const batch = new Float32Array(images.length * 784);
  for (const [i, pixels] of images.entries()) for (let j = 0; j < pixels.length; j++) batch[i * 784 + j] = (pixels[j] - mean) / std;
  return batch;
}
