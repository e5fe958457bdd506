// Class probabilities of 28x28 digit images under a trained network: `webgpu-nn predict` (PNG files) and the web
// page's drawing pad. The images are prepared by src/data/digits.ts; `norm` is the run's input normalisation.
import { normalizedBatch } from '../data/digits.js';
import * as F from '../nn/ops.js';
import { noGrad, tidy } from '../nn/tensor.js';
import type { MnistCnn } from './model.js';

/** Probabilities [images.length * 10] (row i: image i's ten classes), from the model in its current mode. */
export async function digitProbabilities(
  model: MnistCnn,
  images: Float32Array[],
  norm: { mean: number; std: number },
): Promise<Float64Array> {
  const batch = normalizedBatch(images, norm);
  const logp = tidy(() => noGrad(() => model.forward(F.tensor(batch, [images.length, 1, 28, 28]))));
  const out = (await logp.toArray()) as Float32Array;
  logp.dispose();
  return Float64Array.from(out, Math.exp);
}
