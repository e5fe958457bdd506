// The lesson's extra engine parts through autograd, against the float64 references: tanh and sigmoid,
// batch norm on [N, C] input (F.batchNorm, nn.BatchNorm1d) and batch norm's backward in evaluation mode.
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.js';
import * as nn from '../../src/nn/modules.js';
import * as F from '../../src/nn/ops.js';
import { tidy } from '../../src/nn/tensor.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

useGpu({ tensors: true });
const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));

describe('F.tanh, F.sigmoid and their modules', () => {
  for (const [rows, cols] of [
    [1, 1],
    [3, 7],
    [65, 33],
  ]) {
    it(`forward and backward match the reference on [${rows}, ${cols}]`, async () => {
      const x0 = f(randomArray(rows * cols, rows + cols, -5, 5));
      const R = f(randomArray(rows * cols, rows * cols));
      for (const [name, op, fwd, bwd] of [
        ['tanh', F.tanh, ref.tanh, ref.tanhBackward],
        ['sigmoid', F.sigmoid, ref.sigmoid, ref.sigmoidBackward],
      ] as const) {
        const x = F.tensor(Float32Array.from(x0), [rows, cols], { requiresGrad: true });
        const y = tidy(() => {
          const y = op(x);
          y.backward(F.tensor(Float32Array.from(R), [rows, cols]));
          return y;
        });
        expectClose(await y.toArray(), fwd(x0), { atol: 1e-7, rtol: 2e-6, label: `${name} y` });
        expectClose(await x.grad!.toArray(), bwd(fwd(x0), R), { atol: 1e-6, rtol: 1e-5, label: `${name} dx` });
      }
    });
  }

  it('nn.Tanh and nn.Sigmoid are the functional ops as layers', async () => {
    const x = F.tensor([-1, 0, 2], [1, 3]);
    expectClose(await new nn.Tanh().forward(x).toArray(), ref.tanh(Float64Array.of(-1, 0, 2)), { atol: 1e-7, label: 'Tanh' });
    expectClose(await new nn.Sigmoid().forward(x).toArray(), ref.sigmoid(Float64Array.of(-1, 0, 2)), { atol: 1e-7, label: 'Sigmoid' });
  });
});

describe('batch norm on [N, C] input', () => {
  for (const [N, C] of [
    [2, 1],
    [5, 3],
    [64, 50],
    [17, 129],
  ]) {
    it(`F.batchNorm trains, updates the running statistics and backpropagates on [${N}, ${C}]`, async () => {
      const x0 = f(randomArray(N * C, N + C, -2, 3));
      const g0 = f(randomArray(C, C + 1, 0.5, 1.5)),
        b0 = f(randomArray(C, C + 2));
      const R = f(randomArray(N * C, N * C + 3));
      const shape = { N, C, H: 1, W: 1 };
      const x = F.tensor(Float32Array.from(x0), [N, C], { requiresGrad: true });
      const gamma = F.tensor(Float32Array.from(g0), [C], { requiresGrad: true });
      const beta = F.tensor(Float32Array.from(b0), [C], { requiresGrad: true });
      const rm = F.zeros([C]),
        rv = F.ones([C]);
      const y = tidy(() => {
        const y = F.batchNorm(x, rm, rv, gamma, beta, { training: true });
        y.backward(F.tensor(Float32Array.from(R), [N, C]));
        return y;
      });
      const e = ref.batchNorm2dTrain(x0, g0, b0, shape);
      const g = ref.batchNorm2dBackward(x0, g0, R, e.mean, e.invStd, shape);
      const run = ref.updateRunningStats(new Float64Array(C), new Float64Array(C).fill(1), e.mean, e.varBiased, N, 0.1, true);
      const scale = Math.max(...e.invStd);
      expectClose(await y.toArray(), e.y, { atol: 2e-5, rtol: 1e-4, label: 'y' });
      expectClose(await x.grad!.toArray(), g.dx, { atol: 2e-5 * scale, rtol: 1e-3, label: 'dx' });
      expectClose(await gamma.grad!.toArray(), g.dgamma, { atol: 1e-5 * N, rtol: 1e-4, label: 'dgamma' });
      expectClose(await beta.grad!.toArray(), g.dbeta, { atol: 1e-5 * N, rtol: 1e-4, label: 'dbeta' });
      expectClose(await rm.toArray(), run.runningMean, { atol: 1e-6, rtol: 1e-5, label: 'running mean' });
      expectClose(await rv.toArray(), run.runningVar, { atol: 1e-5, rtol: 1e-4, label: 'running var' });
    });
  }

  it('nn.BatchNorm1d takes [N, C] only, nn.BatchNorm2d [N, C, H, W] only, and both keep PyTorch state-dict names', () => {
    const bn1 = new nn.BatchNorm1d(4);
    const bn2 = new nn.BatchNorm2d(4);
    expect([...bn1.stateDict().keys()]).toEqual(['weight', 'bias', 'running_mean', 'running_var']);
    expect(() => bn1.forward(F.zeros([2, 4, 3, 3]))).toThrow(ShapeError);
    expect(() => bn1.forward(F.zeros([2, 4, 3, 3]))).toThrow(/BatchNorm1d: input must be \[N, C\], got \[2, 4, 3, 3\]/);
    expect(() => bn2.forward(F.zeros([2, 4]))).toThrow(/BatchNorm2d: input must be \[N, C, H, W\], got \[2, 4\]/);
    expect(() => F.batchNorm(F.zeros([2, 4, 3]), null, null, F.ones([4]), F.zeros([4]), { training: true })).toThrow(
      /batchNorm: input must be \[N, C\] or \[N, C, H, W\], got \[2, 4, 3\]/,
    );
    expect(() => bn1.forward(F.zeros([1, 4]))).toThrow(/more than one value per channel/);
  });
});

describe('batch norm backward in evaluation mode (frozen statistics)', () => {
  for (const shape of [
    [6, 3],
    [4, 5, 3, 7],
    [2, 10, 12, 12],
  ]) {
    it(`gives input and parameter gradients through the running statistics on [${shape.join(', ')}]`, async () => {
      const [N, C, H, W] = shape.length === 2 ? [shape[0], shape[1], 1, 1] : shape;
      const n = N * C * H * W;
      const x0 = f(randomArray(n, n, -2, 2)),
        R = f(randomArray(n, n + 1));
      const g0 = f(randomArray(C, 3, 0.5, 1.5)),
        rm0 = f(randomArray(C, 4)),
        rv0 = f(randomArray(C, 5, 0.3, 3));
      const bn = shape.length === 2 ? new nn.BatchNorm1d(C) : new nn.BatchNorm2d(C);
      bn.loadStateDict({
        weight: { shape: [C], data: Float32Array.from(g0) },
        bias: { shape: [C], data: new Float32Array(C).fill(0.25) },
        running_mean: { shape: [C], data: Float32Array.from(rm0) },
        running_var: { shape: [C], data: Float32Array.from(rv0) },
      });
      bn.eval();
      const x = F.tensor(Float32Array.from(x0), shape, { requiresGrad: true });
      tidy(() => bn.forward(x).backward(F.tensor(Float32Array.from(R), shape)));
      const e = ref.batchNorm2dEvalBackward(x0, g0, R, rm0, rv0, { N, C, H, W });
      expectClose(await x.grad!.toArray(), e.dx, { atol: 1e-6, rtol: 1e-5, label: 'dx' });
      expectClose(await bn.weight.grad!.toArray(), e.dgamma, { atol: 1e-5 * (n / C), rtol: 1e-4, label: 'dgamma' });
      expectClose(await bn.bias.grad!.toArray(), e.dbeta, { atol: 1e-5 * (n / C), rtol: 1e-4, label: 'dbeta' });
      // The statistics stayed frozen.
      expectClose(await bn.runningMean.toArray(), rm0, { atol: 0, rtol: 0, label: 'running mean untouched' });
    });
  }
});
