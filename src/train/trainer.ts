// The training loop: whole steps recorded and submitted without waiting on the GPU; per-epoch sums of the
// loss and of correct predictions kept on the GPU and read back once per epoch; validation in evaluation
// mode; best weights snapshotted on the GPU as real copies (the seed keeps state_dict() references, so its
// "best" model is really the last one).
import type { GpuDataset } from '../data/gpu-data.js';
import type { Gpu } from '../gpu/runtime.js';
import * as F from '../nn/ops.js';
import { type Optimizer, SGD } from '../nn/optim.js';
import { noGrad, Tensor, tidy } from '../nn/tensor.js';
import { logSoftmaxNllLoss } from '../shaders/softmax.js';
import { mulberry32, shuffleInPlace } from '../util/random.js';
import { checkCorrect, checkLoss } from './metrics.js';
import { createMnistCnn, type MnistCnn, type MnistCnnSettings } from './model.js';

/** Settings of a training run (the model's architecture choices among them). */
export interface TrainOptions extends MnistCnnSettings {
  epochs: number;
  patience: number;
  minDelta: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  momentum: number;
}

/** The seed program's settings: the defaults of `webgpu-nn train`. */
export const SEED_TRAINING: Readonly<TrainOptions> = {
  epochs: 100,
  patience: 20,
  minDelta: 0,
  batchSize: 64,
  lr: 0.01,
  weightDecay: 1e-4,
  momentum: 0,
  seed: 42,
  init: 'pytorch',
  batchNorm: true,
  dropout: 0.5,
  unbiasedRunningVar: true,
};

/** Lets other tasks run: Node's setImmediate; a page has none, and a zero timeout does the job there. */
const yieldToEventLoop = (): Promise<void> =>
  new Promise((r) => (typeof globalThis.setImmediate === 'function' ? setImmediate(r) : setTimeout(r, 0)));

export interface Split {
  data: GpuDataset;
  indices: Uint32Array;
}

export class Trainer {
  readonly model: MnistCnn;
  readonly optimizer: Optimizer;
  readonly norm: { mean: number; std: number };
  private best: Map<string, Tensor> | null = null;

  constructor(
    readonly gpu: Gpu,
    readonly options: TrainOptions,
    norm: { mean: number; std: number } = { mean: 0, std: 1 },
  ) {
    this.norm = norm;
    this.model = createMnistCnn(options);
    this.optimizer = new SGD(this.model.parameters(), {
      lr: options.lr,
      weightDecay: options.weightDecay,
      momentum: options.momentum,
    });
  }

  /**
   * One pass over the training split in a seeded shuffled order (the order depends only on seed and
   * epoch, so a resumed run sees the same batches). Returns the mean of the batch losses, as the seed
   * computes it. `interrupted` is polled between steps.
   */
  async trainEpoch(
    train: Split,
    epoch: number,
    interrupted: () => boolean = () => false,
    onStep?: (done: number, total: number) => void,
    /** Called inside each step after the optimizer, while the step's gradients are still there (records only). */
    afterStep?: () => void,
  ): Promise<number> {
    const { gpu, model, options } = this;
    const order = shuffleInPlace(Uint32Array.from(train.indices), mulberry32(options.seed * 1000003 + epoch));
    const idx = train.data.indexList(order).keep();
    const lossSum = F.zeros([1], { label: 'epoch loss sum' }).keep();
    const steps = Math.ceil(order.length / options.batchSize);
    model.train();
    let done = 0;
    for (let offset = 0; offset < order.length; offset += options.batchSize) {
      if (interrupted()) break;
      const batch = Math.min(options.batchSize, order.length - offset);
      tidy(() => {
        const { x, y } = train.data.batch(idx, offset, batch, this.norm);
        this.trainStep(x, y, lossSum);
        afterStep?.();
      });
      // Submit each step as soon as it is recorded, so the GPU starts on it while the next one is recorded.
      gpu.flush();
      done++;
      // Yield to the event loop now and then so Ctrl-C and progress output get through; no GPU wait.
      if (done % 16 === 0) {
        onStep?.(done, steps);
        await yieldToEventLoop();
      }
    }
    const total = (await lossSum.toArray())[0];
    idx.dispose();
    lossSum.dispose();
    const mean = total / Math.max(done, 1);
    checkLoss(`the mean training loss of epoch ${epoch}`, mean);
    return mean;
  }

  /** Mean batch loss and accuracy in evaluation mode (dropout off, batch norm on running statistics). */
  async evaluate(split: Split): Promise<{ loss: number; accuracy: number }> {
    const { model, options } = this;
    const idx = split.data.indexList(split.indices).keep();
    const lossSum = F.zeros([1], { label: 'eval loss sum' }).keep();
    const correct = F.zeros([1], { label: 'eval correct count' }).keep(); // u32 bits; 0.0f is 0u
    let batches = 0;
    model.eval();
    noGrad(() => {
      for (let offset = 0; offset < split.indices.length; offset += options.batchSize) {
        const batch = Math.min(options.batchSize, split.indices.length - offset);
        tidy(() => {
          const { x, y } = split.data.batch(idx, offset, batch, this.norm);
          this.evalStep(x, y, lossSum, correct);
        });
        batches++;
      }
    });
    const totalLoss = (await lossSum.toArray())[0];
    const hits = new Uint32Array((await correct.toArray()).buffer)[0];
    for (const t of [idx, lossSum, correct]) t.dispose();
    model.train();
    const n = split.indices.length;
    checkCorrect('evaluation', hits, n);
    const loss = totalLoss / Math.max(batches, 1);
    checkLoss('the evaluation loss', loss);
    return { loss, accuracy: hits / Math.max(n, 1) };
  }

  /** Records one training step on a batch (forward, backward, SGD) and adds its mean loss to lossSum[0]. */
  trainStep(x: Tensor, y: Tensor, lossSum: Tensor): void {
    this.optimizer.zeroGrad();
    // The loss kernel also adds the loss to the epoch's sum and writes the gradient backward() starts from.
    const loss = F.crossEntropy(this.model.logits(x), y, { addTo: lossSum });
    loss.backward();
    this.optimizer.step();
  }

  /** Records an evaluation batch (no graph; model in eval mode): its mean loss added to lossSum[0], its correct predictions to correct[0]. */
  evalStep(x: Tensor, y: Tensor, lossSum: Tensor, correct: Tensor): void {
    const logits = this.model.logits(x);
    // One fused pass: the batch's mean loss added to lossSum, its correct predictions to correct.
    const sizes = { rows: x.shape[0], cols: logits.shape[1], accumulate: true };
    logSoftmaxNllLoss(this.gpu, logits.buffer, y.buffer, null, lossSum.buffer, sizes, { correct: correct.buffer });
  }

  /** Copies every parameter and batch-norm statistic into GPU buffers of its own (a real snapshot). */
  snapshotBest(): void {
    const state = this.model.stateDict();
    this.best ??= new Map([...state].map(([k, t]) => [k, Tensor.empty(t.shape, { gpu: this.gpu, label: `best ${k}` }).keep()]));
    for (const [k, t] of state) this.gpu.copy(t.buffer, 0, this.best.get(k)!.buffer, 0, t.size * 4);
  }

  /** Puts the snapshotted best weights back into the model. Returns false if there was none. */
  restoreBest(): boolean {
    if (!this.best) return false;
    this.model.loadStateDict(this.best);
    return true;
  }

  /** The model's current state as CPU arrays (for checkpoints). */
  async stateArrays(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [k, t] of this.model.stateDict()) out[k] = { shape: [...t.shape], data: (await t.toArray()) as Float32Array };
    return out;
  }
}
