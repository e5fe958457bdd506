// Digit pictures prepared the way the network saw MNIST: RGBA pixels of any size are converted to gray
// (transparency composited over white), resized to 28x28 by area averaging, and inverted when the background
// is light (MNIST digits are white on black). No file or Node API: `webgpu-nn predict`'s PNG files (images.ts)
// and the web page's drawing canvas go through the same code.
import { FileFormatError } from '../errors.js';

/** RGBA bytes (width*height*4, row-major) as 28x28 floats in [0, 1], white digit on black. `source` is named in errors. */
export function digitFromRgba(
  data: ArrayLike<number>,
  width: number,
  height: number,
  source: string,
): { pixels: Float32Array; inverted: boolean } {
  if (width < 1 || height < 1) throw new FileFormatError(`${source}: empty image`);
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
