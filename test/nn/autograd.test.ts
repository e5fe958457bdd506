// Autograd over the seed's layer sequence, against the float64 reference chained by hand:
// conv2d → maxPool2d → relu → batchNorm → linear → logSoftmax → nllLoss.
import { describe, expect, it } from 'vitest';
import * as F from '../../src/nn/ops.js';
import { SGD } from '../../src/nn/optim.js';
import { noGrad, type Tensor, tidy } from '../../src/nn/tensor.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

const ctx = useGpu({ tensors: true });

const N = 3,
  C = 2,
  H = 10,
  W = 9,
  O = 4,
  K = 3,
  CLASSES = 5;
const OH = H - K + 1,
  OW = W - K + 1,
  PH = Math.floor(OH / 2),
  PW = Math.floor(OW / 2),
  FEAT = O * PH * PW;

function inputs(seed: number) {
  return {
    x: randomArray(N * C * H * W, seed),
    w: randomArray(O * C * K * K, seed + 1, -0.5, 0.5),
    b: randomArray(O, seed + 2),
    gamma: randomArray(O, seed + 3, 0.5, 1.5),
    beta: randomArray(O, seed + 4),
    fw: randomArray(CLASSES * FEAT, seed + 5, -0.3, 0.3),
    fb: randomArray(CLASSES, seed + 6),
    target: Int32Array.from({ length: N }, (_, i) => (i * 3 + seed) % CLASSES),
  };
}

/** Forward and backward of the chain on the float64 reference. */
function referenceChain(v: ReturnType<typeof inputs>) {
  const conv = ref.conv2d(v.x, v.w, v.b, { N, C, H, W, O, KH: K, KW: K });
  const pool = ref.maxPool2d(conv, { N, C: O, H: OH, W: OW });
  const act = ref.relu(pool.y);
  const bn = ref.batchNorm2dTrain(act, v.gamma, v.beta, { N, C: O, H: PH, W: PW });
  const logits = ref.linear(bn.y, v.fw, v.fb, N, FEAT, CLASSES);
  const logp = ref.logSoftmax(logits, N, CLASSES);
  const loss = ref.nllLoss(logp, v.target, N, CLASSES);

  const dlogp = ref.nllLossBackward(v.target, N, CLASSES);
  const dlogits = ref.logSoftmaxBackward(logp, dlogp, N, CLASSES);
  const lin = ref.linearBackward(bn.y, v.fw, dlogits, N, FEAT, CLASSES);
  const bnb = ref.batchNorm2dBackward(act, v.gamma, lin.dx, bn.mean, bn.invStd, { N, C: O, H: PH, W: PW });
  const dpool = ref.reluBackward(pool.y, bnb.dx);
  const dconv = ref.maxPool2dBackward(dpool, pool.argmax, { N, C: O, H: OH, W: OW });
  const cb = ref.conv2dBackward(v.x, v.w, dconv, { N, C, H, W, O, KH: K, KW: K });
  return { loss, grads: { x: cb.dx, w: cb.dw, b: cb.db, gamma: bnb.dgamma, beta: bnb.dbeta, fw: lin.dw, fb: lin.db } };
}

function gpuChain(v: ReturnType<typeof inputs>, fused: boolean) {
  const p = {
    x: F.tensor(Float32Array.from(v.x), [N, C, H, W], { requiresGrad: true }),
    w: F.tensor(Float32Array.from(v.w), [O, C, K, K], { requiresGrad: true }),
    b: F.tensor(Float32Array.from(v.b), [O], { requiresGrad: true }),
    gamma: F.tensor(Float32Array.from(v.gamma), [O], { requiresGrad: true }),
    beta: F.tensor(Float32Array.from(v.beta), [O], { requiresGrad: true }),
    fw: F.tensor(Float32Array.from(v.fw), [CLASSES, FEAT], { requiresGrad: true }),
    fb: F.tensor(Float32Array.from(v.fb), [CLASSES], { requiresGrad: true }),
  };
  const target = F.tensor(v.target, [N], { dtype: 'int32' });
  const loss = tidy(() => {
    const h = F.batchNorm(F.relu(F.maxPool2d(F.conv2d(p.x, p.w, p.b))), null, null, p.gamma, p.beta, { training: true });
    const logits = F.linear(h.flatten(1), p.fw, p.fb);
    const l = fused ? F.crossEntropy(logits, target) : F.nllLoss(F.logSoftmax(logits), target);
    l.backward();
    return l;
  });
  return { loss, p };
}

describe('autograd through conv → maxpool → relu → batch norm → linear → log-softmax/NLL', () => {
  for (const fused of [false, true]) {
    it(`matches the float64 reference's loss and every gradient (${fused ? 'fused cross-entropy' : 'logSoftmax + nllLoss'})`, async () => {
      const v = inputs(fused ? 11 : 7);
      const expected = referenceChain(v);
      const { loss, p } = gpuChain(v, fused);
      expectClose([await loss.item()], [expected.loss], { label: 'loss', atol: 1e-5, rtol: 1e-4 });
      for (const [name, t] of Object.entries(p) as [keyof typeof expected.grads, Tensor][]) {
        expect(t.grad, `${name}.grad`).not.toBeNull();
        expectClose(await t.grad!.toArray(), expected.grads[name], { label: `d${name}`, atol: 2e-5, rtol: 2e-3 });
      }
    });
  }

  it('accumulates gradients across two backward calls, as PyTorch does', async () => {
    const v = inputs(3);
    const expected = referenceChain(v);
    const x = F.tensor(Float32Array.from(v.fw), [CLASSES, FEAT], { requiresGrad: true });
    const feats = F.tensor(Float32Array.from(randomArray(N * FEAT, 5)), [N, FEAT]);
    const target = F.tensor(v.target, [N], { dtype: 'int32' });
    for (let i = 0; i < 2; i++) tidy(() => F.crossEntropy(F.linear(feats, x), target).backward());
    const once = tidy(() => {
      const y = F.tensor(Float32Array.from(v.fw), [CLASSES, FEAT], { requiresGrad: true });
      F.crossEntropy(F.linear(feats, y), target).backward();
      return y.grad!.keep();
    });
    const twice = await x.grad!.toArray();
    const single = await once.toArray();
    expectClose(
      twice,
      Array.from(single, (g) => 2 * g),
      { label: 'accumulated grad', atol: 1e-6, rtol: 1e-5 },
    );
    expect(expected.loss).toBeGreaterThan(0);
  });

  it('records nothing under noGrad', () => {
    const w = F.tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const y = noGrad(() => F.relu(w));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
  });
});

describe('memory', () => {
  it('bytes in use do not grow over 100 forward/backward/SGD steps', async () => {
    const v = inputs(21);
    const w = F.tensor(Float32Array.from(v.w), [O, C, K, K], { requiresGrad: true }).keep();
    const fw = F.tensor(Float32Array.from(v.fw), [CLASSES, FEAT], { requiresGrad: true }).keep();
    const gamma = F.tensor(Float32Array.from(v.gamma), [O], { requiresGrad: true }).keep();
    const beta = F.tensor(Float32Array.from(v.beta), [O], { requiresGrad: true }).keep();
    const rm = F.zeros([O]).keep(),
      rv = F.ones([O]).keep();
    const x = F.tensor(Float32Array.from(v.x), [N, C, H, W]).keep();
    const target = F.tensor(v.target, [N], { dtype: 'int32' }).keep();
    const opt = new SGD([w, fw, gamma, beta], { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
    const step = () =>
      tidy(() => {
        opt.zeroGrad();
        const h = F.dropout(F.batchNorm(F.relu(F.maxPool2d(F.conv2d(x, w))), rm, rv, gamma, beta, { training: true }), 0.5);
        F.crossEntropy(F.linear(h.flatten(1), fw), target).backward();
        opt.step();
      });
    for (let i = 0; i < 5; i++) step(); // momentum buffers and pool buckets settle
    const { gpu } = ctx;
    await gpu.sync();
    const before = gpu.pool.stats();
    for (let i = 0; i < 100; i++) step();
    await gpu.sync();
    const after = gpu.pool.stats();
    expect(after.bytesInUse).toBe(before.bytesInUse);
    expect(after.bytesAllocated).toBe(before.bytesAllocated);
  });
});
