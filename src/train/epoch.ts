// One epoch of a training run as `webgpu-nn train` and the web page both run it: the training pass, the
// validation pass, the epoch's record, and the line printed for it. No file or Node API here.
import type { EpochRecord } from './history.js';
import type { Split, Trainer } from './trainer.js';

/**
 * Trains one epoch on `train` and evaluates on `val`. Returns null when `interrupted` stopped the training pass
 * (nothing is evaluated then). `onStep` reports steps recorded so far, as Trainer.trainEpoch does.
 */
export async function runEpoch(
  trainer: Trainer,
  train: Split,
  val: Split,
  epoch: number,
  interrupted: () => boolean,
  onStep?: (done: number, total: number) => void,
): Promise<EpochRecord | null> {
  const t0 = performance.now();
  const trainLoss = await trainer.trainEpoch(train, epoch, interrupted, onStep);
  if (interrupted()) return null;
  const trainSeconds = (performance.now() - t0) / 1000; // trainEpoch ends with a readback: GPU work is done
  const { loss: valLoss, accuracy: valAcc } = await trainer.evaluate(val);
  const epochSeconds = (performance.now() - t0) / 1000;
  return { epoch, trainLoss, valLoss, valAcc, epochSeconds, trainSeconds, samplesPerSecond: train.indices.length / trainSeconds };
}

/** "epoch   3  train loss 0.690320  val loss 0.476671  val acc 88.25%  2.1s  4189 train samples/s  *best" */
export function epochLine(record: EpochRecord, improved: boolean): string {
  const { epoch, trainLoss, valLoss, valAcc, epochSeconds, samplesPerSecond } = record;
  return (
    `epoch ${String(epoch).padStart(3)}  train loss ${trainLoss.toFixed(6)}  val loss ${valLoss.toFixed(6)}  ` +
    `val acc ${(100 * valAcc).toFixed(2)}%  ${epochSeconds.toFixed(1)}s  ${Math.round(samplesPerSecond)} train samples/s` +
    (improved ? '  *best' : '')
  );
}

/** "best epoch 99: validation loss 0.056406, accuracy 98.20% (restored)" */
export function bestLine(best: EpochRecord): string {
  return `best epoch ${best.epoch}: validation loss ${best.valLoss.toFixed(6)}, accuracy ${(100 * best.valAcc).toFixed(2)}% (restored)`;
}
