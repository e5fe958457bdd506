// The seed's network (SimpleCNN in the lesson), with the same layer names so state-dict keys match PyTorch:
//
//   conv1 1→10 k5 → maxpool 2 → ReLU → bn1 → dropout 0.5 → conv2 10→20 k5 → maxpool 2 → ReLU → bn2 →
//   dropout 0.5 → flatten 320 → fc1 320→50 → ReLU → fc2 50→10 → log-softmax
//
// With bnPosition 'before', each batch norm comes right after its convolution, before the pool and the ReLU
// (where Ioffe and Szegedy put it; the lesson's notebook puts it after the activation, the default).
//
// `logits()` stops before the log-softmax so training can use the fused cross-entropy kernel
// (crossEntropy(logits) = nllLoss(logSoftmax(logits)), the seed's loss).
import type { InitName } from '../nn/init.js';
import { BatchNorm2d, Conv2d, Dropout, Linear, Module } from '../nn/modules.js';
import * as F from '../nn/ops.js';
import type { Tensor } from '../nn/tensor.js';
import { mulberry32 } from '../util/random.js';

/** Where each batch norm sits: after the conv block's ReLU (the seed's) or right after the convolution. */
export type BnPosition = 'after' | 'before';
export const BN_POSITIONS: readonly BnPosition[] = ['after', 'before'];

export interface MnistCnnOptions {
  rng: () => number;
  init?: InitName;
  /** Batch norm after each conv block (the seed's); false gives the lesson's "without BN" baseline. */
  batchNorm?: boolean;
  bnPosition?: BnPosition;
  dropout?: number;
  /** Running variance from the unbiased batch variance (nn.BatchNorm2d) or the biased one (the seed's CustomBatchNorm). */
  unbiasedRunningVar?: boolean;
  /** Seed of the dropout masks. */
  seed?: number;
}

export class MnistCnn extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly bn1: BatchNorm2d | null;
  readonly bn2: BatchNorm2d | null;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly dropout: Dropout;

  constructor(readonly options: MnistCnnOptions) {
    super();
    const layer = { rng: options.rng, init: options.init };
    const bnOpts = { momentum: 0.1, eps: 1e-5, unbiasedRunningVar: options.unbiasedRunningVar ?? true };
    this.conv1 = this.child('conv1', new Conv2d(1, 10, 5, layer));
    this.bn1 = options.batchNorm === false ? null : this.child('bn1', new BatchNorm2d(10, bnOpts));
    this.conv2 = this.child('conv2', new Conv2d(10, 20, 5, layer));
    this.bn2 = options.batchNorm === false ? null : this.child('bn2', new BatchNorm2d(20, bnOpts));
    this.fc1 = this.child('fc1', new Linear(320, 50, layer));
    this.fc2 = this.child('fc2', new Linear(50, 10, layer));
    this.dropout = this.child('dropout', new Dropout(options.dropout ?? 0.5, options.seed ?? 0x5eed));
  }

  /** Scores before the log-softmax, [N, 10], from images [N, 1, 28, 28]. */
  logits(x: Tensor): Tensor {
    // Fused: forwardMaxPool2dRelu = F.relu(F.max_pool2d(conv(·), 2)), maxPool2dRelu = F.relu(F.max_pool2d(·, 2)),
    // bn.forward(h, dropout) = dropout(bn(h)) and linearRelu = F.relu(fc1(h)).
    const before = this.options.bnPosition === 'before';
    const block = (conv: Conv2d, bn: BatchNorm2d | null, h: Tensor) => {
      if (before && bn) h = F.maxPool2dRelu(bn.forward(conv.forward(h)), 2);
      else h = conv.forwardMaxPool2dRelu(h);
      return !before && bn ? bn.forward(h, this.dropout) : this.dropout.forward(h);
    };
    let h = block(this.conv2, this.bn2, block(this.conv1, this.bn1, x));
    h = F.linearRelu(h.reshape([-1, 320]), this.fc1.weight, this.fc1.bias);
    return this.fc2.forward(h);
  }

  /** Log-probabilities [N, 10], as the seed's forward returns. */
  forward(x: Tensor): Tensor {
    return F.logSoftmax(this.logits(x), 1);
  }
}

/** The architecture choices of a run: what `createMnistCnn` needs besides the seed. */
export interface MnistCnnSettings {
  /** Seed of the initial weights (mulberry32) and of the dropout masks. */
  seed: number;
  init: InitName;
  batchNorm: boolean;
  /** Default 'after' (also for runs saved before the setting existed). */
  bnPosition?: BnPosition;
  dropout: number;
  unbiasedRunningVar: boolean;
}

/** The network a run with these settings trains, initialised from its seed (in training mode). */
export function createMnistCnn(s: MnistCnnSettings): MnistCnn {
  return new MnistCnn({
    rng: mulberry32(s.seed),
    init: s.init,
    batchNorm: s.batchNorm,
    bnPosition: s.bnPosition,
    dropout: s.dropout,
    unbiasedRunningVar: s.unbiasedRunningVar,
    seed: s.seed,
  });
}
