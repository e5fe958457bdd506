// Classification metrics of a trained model: the confusion matrix (rows: true digit, columns: predicted)
// and its text table with per-class recall; and the checks that a metric is possible at all. A loss below
// zero, more correct predictions than samples, probabilities that do not sum to one: these are bugs of ours
// (InternalError, with a request to report), never numbers to print.
import type { GpuDataset } from '../data/gpu-data.js';
import { InternalError } from '../errors.js';
import { noGrad, tidy } from '../nn/tensor.js';
import type { MnistCnn } from './model.js';

/**
 * Counts of (true digit, predicted digit) over the samples at `indices`, in forward passes of `batchSize`
 * images normalised with `norm`. The prediction is the highest score (the first on a tie).
 */
export async function confusionMatrix(
  model: MnistCnn,
  data: GpuDataset,
  indices: Uint32Array,
  opts: { batchSize: number; norm: { mean: number; std: number } },
): Promise<number[][]> {
  const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  const idx = data.indexList(indices).keep();
  for (let offset = 0; offset < indices.length; offset += opts.batchSize) {
    const batch = Math.min(opts.batchSize, indices.length - offset);
    const { logits, labels } = noGrad(() =>
      tidy(() => {
        const { x, y } = data.batch(idx, offset, batch, opts.norm);
        return { logits: model.logits(x), labels: y };
      }),
    );
    const [scores, truth] = [(await logits.toArray()) as Float32Array, (await labels.toArray()) as Int32Array];
    logits.dispose();
    labels.dispose();
    for (let r = 0; r < batch; r++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (scores[r * 10 + c] > scores[r * 10 + best]) best = c;
      if (!(truth[r] >= 0 && truth[r] < 10)) throw new InternalError(`sample ${indices[offset + r]} came back with the label ${truth[r]}`);
      confusion[truth[r]][best]++;
    }
  }
  idx.dispose();
  checkCorrect(
    'the confusion matrix',
    confusion.flat().reduce((a, b) => a + b, 0),
    indices.length,
    true,
  );
  return confusion;
}

/** Cross-entropy is never negative: below zero beyond float32 rounding is a bug. NaN and infinity are a diverging run's, reported by the caller. */
export function checkLoss(what: string, loss: number): void {
  if (loss < -1e-4) throw new InternalError(`${what} is ${loss}, below zero, which a cross-entropy cannot be`);
}

/** `count` of `n` samples: at most n (exactly n with `all`, as a confusion matrix counts every sample). */
export function checkCorrect(what: string, count: number, n: number, all = false): void {
  if (!Number.isInteger(count) || count < 0 || count > n || (all && count !== n)) {
    throw new InternalError(`${what} counts ${count} ${all ? 'samples' : 'correct predictions'} among ${n} samples`);
  }
}

/** Class probabilities of one input: each in [0, 1], summing to 1 (to float32 rounding). */
export function checkProbabilities(what: string, p: readonly number[]): void {
  const sum = p.reduce((a, b) => a + b, 0);
  if (!(Math.abs(sum - 1) < 1e-3) || p.some((v) => !(v >= 0 && v <= 1 + 1e-6))) {
    throw new InternalError(`the class probabilities of ${what} are [${p.map((v) => v.toPrecision(3)).join(', ')}], which do not sum to 1`);
  }
}

/** Correct predictions: the diagonal's sum. */
export function correctCount(m: number[][]): number {
  return m.reduce((s, row, i) => s + row[i], 0);
}

/** Rows: true digit; columns: predicted digit; last column: per-class recall. */
export function formatConfusion(m: number[][]): string {
  const w = Math.max(4, ...m.flat().map((v) => String(v).length + 1));
  const pad = (s: string | number) => String(s).padStart(w);
  const lines = [
    'confusion matrix (rows: true digit, columns: predicted)',
    `${'true'.padStart(5)} ${m.map((_, c) => pad(c)).join('')}  recall`,
  ];
  m.forEach((row, r) => {
    const total = row.reduce((a, b) => a + b, 0);
    lines.push(`${String(r).padStart(5)} ${row.map(pad).join('')}  ${total ? `${((100 * row[r]) / total).toFixed(1)}%` : '-'}`);
  });
  return lines.join('\n');
}
