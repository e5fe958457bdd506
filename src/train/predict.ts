// Class probabilities of 28x28 digit images under a trained network: `webgpu-nn predict` (PNG files) and the web
// page's drawing pad. The images are prepared by src/data/digits.ts; `norm` is the run's input normalisation.
import { normalizedBatch } from '../data/digits.js';
import * as F from '../nn/ops.js';
import { noGrad, tidy } from '../nn/tensor.js';
import type { MnistCnn } from './model.js';

/** Images per forward pass: far below what the adapter's buffers allow, large enough to keep it busy. */
const BATCH = 256;

/**
 * Probabilities [images.length * 10] (row i: image i's ten classes), from the model in its current mode. Any
 * number of images: they go through the network in batches.
 */
export async function digitProbabilities(
  model: MnistCnn,
  images: Float32Array[],
  norm: { mean: number; std: number },
): Promise<Float64Array> {
  const probs = new Float64Array(images.length * 10);
  for (let start = 0; start < images.length; start += BATCH) {
    const chunk = images.slice(start, start + BATCH);
    const batch = normalizedBatch(chunk, norm);
    // tidy returns the batch's activations to the pool; only the log-probabilities outlive it.
    const logp = noGrad(() => tidy(() => model.forward(F.tensor(batch, [chunk.length, 1, 28, 28]))));
    const out = (await logp.toArray()) as Float32Array;
    logp.dispose();
    probs.set(Float64Array.from(out, Math.exp), start * 10);
  }
  return probs;
}
