// A run's history: one record per finished epoch, written as history.json and drawn as loss.png in the
// run's output directory.
import { lineChart } from '../plot/plot.js';
import type { OutputDir } from '../util/output-dir.js';

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  valLoss: number;
  valAcc: number;
  /** Wall time of the whole epoch: training and validation. */
  epochSeconds: number;
  /** Wall time of the training pass alone. */
  trainSeconds: number;
  /** Training samples per second of the training pass. */
  samplesPerSecond: number;
}

/** DIR/history.json: the records as an indented JSON array. */
export function writeHistory(dir: OutputDir, history: EpochRecord[]): void {
  dir.write('history.json', `${JSON.stringify(history, null, 2)}\n`);
}

/** loss.png: train and validation loss against epoch. */
export function lossPlot(history: EpochRecord[]): Buffer {
  const x = history.map((h) => h.epoch);
  return lineChart({
    title: 'Train and validation loss vs epochs',
    xLabel: 'Epochs',
    yLabel: 'Loss',
    series: [
      { name: 'Train loss', x, y: history.map((h) => h.trainLoss) },
      { name: 'Validation loss', x, y: history.map((h) => h.valLoss) },
    ],
  });
}
