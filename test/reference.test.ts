// Checks the float64 CPU references: backward passes against central differences, forwards against
// independent computations. Every GPU kernel test compares against these references.
import { describe, expect, it } from 'vitest';
import { expectClose, randomArray } from './helpers/compare.js';
import {
  add,
  batchNorm2dBackward,
  batchNorm2dEval,
  batchNorm2dEvalBackward,
  batchNorm2dTrain,
  type Conv2dParams,
  conv2d,
  conv2dBackward,
  convOutSize,
  crossEntropyFromLogits,
  crossEntropyFromLogitsBackward,
  dropoutApply,
  dropoutBackward,
  linear,
  linearBackward,
  logSoftmax,
  logSoftmaxBackward,
  matmul,
  maxPool2d,
  maxPool2dBackward,
  mean,
  nllLoss,
  nllLossBackward,
  numericalGrad,
  relu,
  reluBackward,
  scale,
  sgdStep,
  sigmoid,
  sigmoidBackward,
  sum,
  tanh,
  tanhBackward,
  updateRunningStats,
} from './reference/index.js';

// L = Σ out·R: its gradient with respect to out is R.
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

// Analytic gradient vs central differences of the scalar loss f, to ~1e-6 relative.
function checkGrad(label: string, f: () => number, x: Float64Array, analytic: Float64Array): void {
  expectClose(analytic, numericalGrad(f, x), { atol: 1e-7, rtol: 1e-6, label });
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

function randomTargets(rows: number, cols: number, seed: number): Int32Array {
  return Int32Array.from(randomArray(rows, seed, 0, cols), (v) => Math.floor(v));
}

describe('matmul / linear', () => {
  it('matches a hand-computed product', () => {
    const a = Float64Array.of(1, 2, 3, 4, 5, 6); // [2,3]
    const b = Float64Array.of(7, 8, 9, 10, 11, 12); // [3,2]
    expectClose(matmul(a, b, 2, 3, 2), [58, 64, 139, 154], { label: 'matmul 2x3·3x2' });
  });

  it('transposed operands equal matmul of explicitly transposed arrays', () => {
    const M = 4,
      K = 5,
      N = 3;
    const a = randomArray(M * K, 1); // [M,K]
    const b = randomArray(K * N, 2); // [K,N]
    const ref = matmul(a, b, M, K, N);
    const aT = transpose(a, M, K); // [K,M]
    const bT = transpose(b, K, N); // [N,K]
    expectClose(matmul(aT, b, M, K, N, { transA: true }), ref, { label: 'transA' });
    expectClose(matmul(a, bT, M, K, N, { transB: true }), ref, { label: 'transB' });
    expectClose(matmul(aT, bT, M, K, N, { transA: true, transB: true }), ref, { label: 'transA+transB' });
  });

  it('linear backward matches finite differences', () => {
    const batch = 3,
      inF = 5,
      outF = 4;
    const x = randomArray(batch * inF, 10);
    const w = randomArray(outF * inF, 11);
    const b = randomArray(outF, 12);
    const R = randomArray(batch * outF, 13);
    const loss = () => dot(linear(x, w, b, batch, inF, outF), R);
    const g = linearBackward(x, w, R, batch, inF, outF);
    checkGrad('linear dx', loss, x, g.dx);
    checkGrad('linear dw', loss, w, g.dw);
    checkGrad('linear db', loss, b, g.db);
  });
});

describe('conv2d', () => {
  it('output size follows PyTorch', () => {
    expect(convOutSize(28, 5, 1, 0)).toBe(24);
    expect(convOutSize(6, 3, 2, 1)).toBe(3);
    expect(convOutSize(5, 3, 2, 1)).toBe(3);
    expect(convOutSize(7, 2, 2, 0)).toBe(3);
  });

  it('1x1 kernel equals a matmul per image', () => {
    const p: Conv2dParams = { N: 2, C: 3, H: 4, W: 5, O: 6, KH: 1, KW: 1 };
    const HW = p.H * p.W;
    const x = randomArray(p.N * p.C * HW, 20);
    const w = randomArray(p.O * p.C, 21); // [O,C,1,1] = [O,C]
    const b = randomArray(p.O, 22);
    const y = conv2d(x, w, b, p);
    for (let n = 0; n < p.N; n++) {
      const xn = x.subarray(n * p.C * HW, (n + 1) * p.C * HW); // [C,HW]
      const yn = matmul(w, xn, p.O, p.C, HW); // [O,HW]
      for (let o = 0; o < p.O; o++) for (let i = 0; i < HW; i++) yn[o * HW + i] += b[o];
      expectClose(y.subarray(n * p.O * HW, (n + 1) * p.O * HW), yn, { label: `conv 1x1 image ${n}` });
    }
  });

  const cases: [string, Conv2dParams][] = [
    ['stride 1, no padding', { N: 2, C: 3, H: 6, W: 5, O: 4, KH: 3, KW: 3 }],
    ['stride 2, padding 1', { N: 2, C: 3, H: 6, W: 5, O: 4, KH: 3, KW: 3, stride: 2, padding: 1 }],
    ['stride 2, padding 1, 2x3 kernel', { N: 1, C: 2, H: 7, W: 6, O: 3, KH: 2, KW: 3, stride: 2, padding: 1 }],
  ];
  for (const [name, p] of cases) {
    it(`backward matches finite differences (${name})`, () => {
      const s = p.stride ?? 1,
        pad = p.padding ?? 0;
      const OH = convOutSize(p.H, p.KH, s, pad),
        OW = convOutSize(p.W, p.KW, s, pad);
      const x = randomArray(p.N * p.C * p.H * p.W, 30);
      const w = randomArray(p.O * p.C * p.KH * p.KW, 31);
      const b = randomArray(p.O, 32);
      const R = randomArray(p.N * p.O * OH * OW, 33);
      const loss = () => dot(conv2d(x, w, b, p), R);
      const g = conv2dBackward(x, w, R, p);
      checkGrad(`conv ${name} dx`, loss, x, g.dx);
      checkGrad(`conv ${name} dw`, loss, w, g.dw);
      checkGrad(`conv ${name} db`, loss, b, g.db);
    });
  }
});

describe('maxPool2d', () => {
  it('floors the output size and picks the first max on ties', () => {
    const x = Float64Array.of(1, 1, 0, 9, 9, 0, 2, 3, 3); // [1,1,3,3], one 2x2 window
    const { y, argmax, OH, OW } = maxPool2d(x, { N: 1, C: 1, H: 3, W: 3 });
    expect([OH, OW]).toEqual([1, 1]);
    expect(Array.from(y)).toEqual([9]);
    expect(Array.from(argmax)).toEqual([3]); // x[1,0] and x[1,1] both 9: first wins
  });

  const cases: [string, { N: number; C: number; H: number; W: number; kernel?: number; stride?: number }][] = [
    ['2x2 on 6x5', { N: 2, C: 3, H: 6, W: 5 }],
    ['2x2 on 5x7', { N: 2, C: 3, H: 5, W: 7 }],
    ['3x3 stride 2 (overlapping) on 5x7', { N: 2, C: 2, H: 5, W: 7, kernel: 3, stride: 2 }],
  ];
  for (const [name, p] of cases) {
    it(`backward matches finite differences (${name})`, () => {
      const x = randomArray(p.N * p.C * p.H * p.W, 40);
      const { y, argmax, OH, OW } = maxPool2d(x, p);
      const k = p.kernel ?? 2,
        s = p.stride ?? k;
      expect([OH, OW]).toEqual([Math.floor((p.H - k) / s) + 1, Math.floor((p.W - k) / s) + 1]);
      const R = randomArray(y.length, 41);
      const loss = () => dot(maxPool2d(x, p).y, R);
      checkGrad(`maxpool ${name} dx`, loss, x, maxPool2dBackward(R, argmax, p));
    });
  }
});

describe('batch norm', () => {
  const shape = { N: 2, C: 3, H: 6, W: 5 };
  const size = shape.N * shape.C * shape.H * shape.W;
  const HW = shape.H * shape.W;

  it('normalizes each channel to mean 0, biased variance 1 (gamma=1, beta=0)', () => {
    const x = randomArray(size, 50, -3, 5);
    const { y } = batchNorm2dTrain(x, new Float64Array(3).fill(1), new Float64Array(3), shape);
    for (let c = 0; c < shape.C; c++) {
      const vals: number[] = [];
      for (let n = 0; n < shape.N; n++) for (let i = 0; i < HW; i++) vals.push(y[(n * shape.C + c) * HW + i]);
      const m = mean(vals);
      const v = mean(vals.map((u) => (u - m) ** 2));
      expect(Math.abs(m)).toBeLessThan(1e-12);
      expect(v).toBeCloseTo(1, 4); // 1 − eps/(σ²+eps)
    }
  });

  it('eval with the batch statistics reproduces training output', () => {
    const x = randomArray(size, 51);
    const gamma = randomArray(3, 52),
      beta = randomArray(3, 53);
    const t = batchNorm2dTrain(x, gamma, beta, shape);
    expectClose(batchNorm2dEval(x, gamma, beta, t.mean, t.varBiased, shape, 1e-5), t.y, { atol: 1e-12, label: 'bn eval' });
  });

  it('backward matches finite differences', () => {
    const x = randomArray(size, 54);
    const gamma = randomArray(3, 55, 0.5, 1.5),
      beta = randomArray(3, 56);
    const R = randomArray(size, 57);
    const loss = () => dot(batchNorm2dTrain(x, gamma, beta, shape).y, R);
    const t = batchNorm2dTrain(x, gamma, beta, shape);
    const g = batchNorm2dBackward(x, gamma, R, t.mean, t.invStd, shape);
    checkGrad('bn dx', loss, x, g.dx);
    checkGrad('bn dgamma', loss, gamma, g.dgamma);
    checkGrad('bn dbeta', loss, beta, g.dbeta);
  });

  it('evaluation-mode backward (frozen statistics) matches finite differences, also on [N, C] input (H = W = 1)', () => {
    for (const sh of [shape, { N: 7, C: 4, H: 1, W: 1 }]) {
      const n = sh.N * sh.C * sh.H * sh.W;
      const x = randomArray(n, 58);
      const gamma = randomArray(sh.C, 59, 0.5, 1.5),
        beta = randomArray(sh.C, 60);
      const rm = randomArray(sh.C, 61),
        rv = randomArray(sh.C, 62, 0.5, 2);
      const R = randomArray(n, 63);
      const loss = () => dot(batchNorm2dEval(x, gamma, beta, rm, rv, sh), R);
      const g = batchNorm2dEvalBackward(x, gamma, R, rm, rv, sh);
      checkGrad(`bn eval dx ${sh.H}`, loss, x, g.dx);
      checkGrad(`bn eval dgamma ${sh.H}`, loss, gamma, g.dgamma);
      checkGrad(`bn eval dbeta ${sh.H}`, loss, beta, g.dbeta);
    }
  });

  it('running stats: unbiased vs biased variance', () => {
    const rm = Float64Array.of(0, 1),
      rv = Float64Array.of(1, 2);
    const m = Float64Array.of(2, 3),
      vb = Float64Array.of(4, 0.5);
    const count = 5,
      mom = 0.1;
    const u = updateRunningStats(rm, rv, m, vb, count, mom, true);
    const b = updateRunningStats(rm, rv, m, vb, count, mom, false);
    expectClose(u.runningMean, [0.9 * 0 + 0.1 * 2, 0.9 * 1 + 0.1 * 3], { label: 'running mean' });
    expectClose(b.runningMean, u.runningMean, { label: 'running mean (biased)' });
    expectClose(u.runningVar, [0.9 * 1 + 0.1 * 4 * (5 / 4), 0.9 * 2 + 0.1 * 0.5 * (5 / 4)], { label: 'running var unbiased' });
    expectClose(b.runningVar, [0.9 * 1 + 0.1 * 4, 0.9 * 2 + 0.1 * 0.5], { label: 'running var biased' });
  });
});

describe('log-softmax / nll', () => {
  const rows = 4,
    cols = 7;

  it('log-softmax rows exp-sum to 1, even for large logits', () => {
    const x = randomArray(rows * cols, 60, -5, 5);
    x[3] = 1000; // would overflow without the max shift
    const y = logSoftmax(x, rows, cols);
    for (let r = 0; r < rows; r++) expect(sum(y.subarray(r * cols, (r + 1) * cols).map(Math.exp))).toBeCloseTo(1, 12);
  });

  it('log-softmax backward matches finite differences', () => {
    const x = randomArray(rows * cols, 61, -3, 3);
    const R = randomArray(rows * cols, 62);
    const loss = () => dot(logSoftmax(x, rows, cols), R);
    checkGrad('logsoftmax dx', loss, x, logSoftmaxBackward(logSoftmax(x, rows, cols), R, rows, cols));
  });

  it('nll backward matches finite differences', () => {
    const logp = randomArray(rows * cols, 63, -4, 0);
    const t = randomTargets(rows, cols, 64);
    checkGrad('nll dlogp', () => nllLoss(logp, t, rows, cols), logp, nllLossBackward(t, rows, cols));
  });

  it('log-softmax + nll composite matches finite differences and cross-entropy', () => {
    const x = randomArray(rows * cols, 65, -3, 3);
    const t = randomTargets(rows, cols, 66);
    const loss = () => nllLoss(logSoftmax(x, rows, cols), t, rows, cols);
    expect(crossEntropyFromLogits(x, t, rows, cols)).toBeCloseTo(loss(), 14);
    const dx = logSoftmaxBackward(logSoftmax(x, rows, cols), nllLossBackward(t, rows, cols), rows, cols);
    checkGrad('cross-entropy dx', loss, x, dx);
    expectClose(crossEntropyFromLogitsBackward(x, t, rows, cols), dx, { atol: 1e-12, label: 'fused CE backward' });
  });
});

describe('elementwise', () => {
  it('relu backward matches finite differences', () => {
    const x = randomArray(2 * 3 * 6 * 5, 70);
    const R = randomArray(x.length, 71);
    checkGrad('relu dx', () => dot(relu(x), R), x, reluBackward(x, R));
  });

  it('tanh and sigmoid backward (from the output) match finite differences', () => {
    const x = randomArray(90, 75, -4, 4);
    const R = randomArray(x.length, 76);
    checkGrad('tanh dx', () => dot(tanh(x), R), x, tanhBackward(tanh(x), R));
    checkGrad('sigmoid dx', () => dot(sigmoid(x), R), x, sigmoidBackward(sigmoid(x), R));
    // Independent forms: tanh(x) = 2·sigmoid(2x) − 1.
    expectClose(
      tanh(x),
      sigmoid(x.map((v) => 2 * v)).map((s) => 2 * s - 1),
      { atol: 1e-14, label: 'tanh = 2σ(2x) − 1' },
    );
  });

  it('dropout backward matches finite differences', () => {
    const p = 0.3;
    const x = randomArray(60, 72);
    const mask = randomArray(60, 73, 0, 1).map((u) => (u >= p ? 1 : 0));
    const R = randomArray(60, 74);
    const y = dropoutApply(x, mask, p);
    for (let i = 0; i < x.length; i++) expect(y[i]).toBeCloseTo(mask[i] ? x[i] / (1 - p) : 0, 14);
    checkGrad('dropout dx', () => dot(dropoutApply(x, mask, p), R), x, dropoutBackward(R, mask, p));
  });

  it('add, scale, sum, mean', () => {
    const a = Float64Array.of(1, 2, 3),
      b = Float64Array.of(4, 5, 6);
    expect(Array.from(add(a, b))).toEqual([5, 7, 9]);
    expect(Array.from(scale(a, -2))).toEqual([-2, -4, -6]);
    expect(sum(b)).toBe(15);
    expect(mean(b)).toBe(5);
  });
});

describe('sgd', () => {
  const theta0 = Float64Array.of(1, -2);
  const grads = [Float64Array.of(0.5, -1), Float64Array.of(0.25, 2), Float64Array.of(-1, 0.5)];
  const lr = 0.1,
    wd = 0.01,
    m = 0.9;

  function run(opts: { dampening: number; nesterov: boolean }): Float64Array {
    let param: Float64Array = theta0;
    let velocity: Float64Array | null = null;
    for (const g of grads) ({ param, velocity } = sgdStep(param, g, { lr, weightDecay: wd, momentum: m, ...opts }, velocity));
    return param;
  }

  it('momentum + dampening over 3 steps matches hand-unrolled torch.optim.SGD', () => {
    const d = 0.2;
    const expected = [0, 1].map((i) => {
      const t0 = theta0[i],
        [g0, g1, g2] = grads.map((g) => g[i]);
      const a0 = g0 + wd * t0,
        b0 = a0,
        t1 = t0 - lr * b0; // first step: buf = g, no dampening
      const a1 = g1 + wd * t1,
        b1 = m * b0 + (1 - d) * a1,
        t2 = t1 - lr * b1;
      const a2 = g2 + wd * t2,
        b2 = m * b1 + (1 - d) * a2,
        t3 = t2 - lr * b2;
      return t3;
    });
    expectClose(run({ dampening: d, nesterov: false }), expected, { atol: 1e-14, rtol: 0, label: 'sgd momentum' });
  });

  it('nesterov momentum over 3 steps matches hand-unrolled torch.optim.SGD', () => {
    const expected = [0, 1].map((i) => {
      const t0 = theta0[i],
        [g0, g1, g2] = grads.map((g) => g[i]);
      const a0 = g0 + wd * t0,
        b0 = a0,
        t1 = t0 - lr * (a0 + m * b0);
      const a1 = g1 + wd * t1,
        b1 = m * b0 + a1,
        t2 = t1 - lr * (a1 + m * b1);
      const a2 = g2 + wd * t2,
        b2 = m * b1 + a2,
        t3 = t2 - lr * (a2 + m * b2);
      return t3;
    });
    expectClose(run({ dampening: 0, nesterov: true }), expected, { atol: 1e-14, rtol: 0, label: 'sgd nesterov' });
  });

  it('plain SGD without momentum keeps no velocity', () => {
    const r = sgdStep(Float64Array.of(1, 2), Float64Array.of(0.5, -0.5), { lr: 0.1 }, null);
    expect(r.velocity).toBeNull();
    expectClose(r.param, [0.95, 2.05], { atol: 1e-15, label: 'plain sgd' });
  });
});
