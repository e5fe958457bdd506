// Early stopping on a monitored metric (validation loss by default), with the same semantics as
// the usual PyTorch recipe: stop after `patience` epochs without an improvement larger than
// `minDelta`. Its state round-trips through JSON so a resumed run continues the count.
import { UsageError } from '../errors.js';

export interface EarlyStoppingOptions {
  patience?: number;
  minDelta?: number;
  mode?: 'min' | 'max';
}

/** JSON-safe snapshot; bestValue is null until a finite value has been seen. */
export interface EarlyStoppingState {
  patience: number;
  minDelta: number;
  mode: 'min' | 'max';
  bestValue: number | null;
  bestEpoch: number;
  counter: number;
  epoch: number;
}

export class EarlyStopping {
  readonly patience: number;
  readonly minDelta: number;
  readonly mode: 'min' | 'max';
  /** Best value so far (Infinity for 'min' / -Infinity for 'max' before any finite value). */
  bestValue: number;
  /** 1-based epoch of the best value; 0 before any. */
  bestEpoch = 0;
  /** Epochs since the last improvement. */
  counter = 0;
  /** Number of step() calls so far. */
  epoch = 0;

  constructor({ patience = 20, minDelta = 0, mode = 'min' }: EarlyStoppingOptions = {}) {
    if (!Number.isInteger(patience) || patience < 1) throw new UsageError(`--patience: expected an integer >= 1, got ${patience}`);
    if (!(minDelta >= 0)) throw new UsageError(`--min-delta: expected a number >= 0, got ${minDelta}`);
    if (mode !== 'min' && mode !== 'max') throw new UsageError(`early stopping mode must be "min" or "max", got "${mode}"`);
    this.patience = patience;
    this.minDelta = minDelta;
    this.mode = mode;
    this.bestValue = mode === 'min' ? Infinity : -Infinity;
  }

  /** Feeds one epoch's metric. A NaN or infinite value never counts as an improvement. */
  step(value: number): { improved: boolean; stop: boolean } {
    this.epoch++;
    const improved =
      Number.isFinite(value) && (this.mode === 'min' ? value < this.bestValue - this.minDelta : value > this.bestValue + this.minDelta);
    if (improved) {
      this.bestValue = value;
      this.bestEpoch = this.epoch;
      this.counter = 0;
    } else {
      this.counter++;
    }
    return { improved, stop: this.counter >= this.patience };
  }

  state(): EarlyStoppingState {
    const { patience, minDelta, mode, bestEpoch, counter, epoch } = this;
    return { patience, minDelta, mode, bestValue: Number.isFinite(this.bestValue) ? this.bestValue : null, bestEpoch, counter, epoch };
  }

  static from(s: EarlyStoppingState): EarlyStopping {
    const es = new EarlyStopping({ patience: s.patience, minDelta: s.minDelta, mode: s.mode });
    if (s.bestValue !== null) es.bestValue = s.bestValue;
    es.bestEpoch = s.bestEpoch;
    es.counter = s.counter;
    es.epoch = s.epoch;
    return es;
  }
}
