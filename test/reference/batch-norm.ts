// Float64 reference: 2-D batch normalization over (N,H,W) per channel, NCHW.

export interface BatchNormShape {
  N: number;
  C: number;
  H: number;
  W: number;
  eps?: number;
}

export interface BatchNormTrainResult {
  y: Float64Array;
  mean: Float64Array; // [C]
  varBiased: Float64Array; // [C], divided by N*H*W
  invStd: Float64Array; // [C], 1/sqrt(varBiased+eps)
}

// Index of x[n,c,i] where i runs over the H*W plane.
function at(n: number, c: number, i: number, C: number, HW: number): number {
  return (n * C + c) * HW + i;
}

// y = γ·(x − μ_c)·invStd_c + β with μ_c, σ²_c the batch mean and biased variance over (N,H,W).
export function batchNorm2dTrain(x: Float64Array, gamma: Float64Array, beta: Float64Array, shape: BatchNormShape): BatchNormTrainResult {
  const { N, C, H, W } = shape;
  const eps = shape.eps ?? 1e-5;
  const HW = H * W;
  const count = N * HW;
  const mean = new Float64Array(C);
  const varBiased = new Float64Array(C);
  const invStd = new Float64Array(C);
  const y = new Float64Array(x.length);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += x[at(n, c, i, C, HW)];
    const mu = s / count;
    let v = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) v += (x[at(n, c, i, C, HW)] - mu) ** 2;
    v /= count;
    const inv = 1 / Math.sqrt(v + eps);
    mean[c] = mu;
    varBiased[c] = v;
    invStd[c] = inv;
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const j = at(n, c, i, C, HW);
        y[j] = gamma[c] * (x[j] - mu) * inv + beta[c];
      }
  }
  return { y, mean, varBiased, invStd };
}

// y = γ·(x − runningMean_c)/sqrt(runningVar_c + eps) + β.
export function batchNorm2dEval(
  x: Float64Array,
  gamma: Float64Array,
  beta: Float64Array,
  runningMean: Float64Array,
  runningVar: Float64Array,
  shape: BatchNormShape,
  eps = shape.eps ?? 1e-5,
): Float64Array {
  const { N, C, H, W } = shape;
  const HW = H * W;
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const inv = 1 / Math.sqrt(runningVar[c] + eps);
      for (let i = 0; i < HW; i++) {
        const j = at(n, c, i, C, HW);
        y[j] = gamma[c] * (x[j] - runningMean[c]) * inv + beta[c];
      }
    }
  return y;
}

// running = (1−m)·running + m·batch; batch variance is scaled by count/(count−1) when unbiased (PyTorch).
export function updateRunningStats(
  runningMean: Float64Array,
  runningVar: Float64Array,
  mean: Float64Array,
  varBiased: Float64Array,
  count: number,
  momentum: number,
  unbiased: boolean,
): { runningMean: Float64Array; runningVar: Float64Array } {
  const C = runningMean.length;
  const newMean = new Float64Array(C);
  const newVar = new Float64Array(C);
  const corr = unbiased ? count / (count - 1) : 1;
  for (let c = 0; c < C; c++) {
    newMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
    newVar[c] = (1 - momentum) * runningVar[c] + momentum * varBiased[c] * corr;
  }
  return { runningMean: newMean, runningVar: newVar };
}

export interface BatchNormGrads {
  dx: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

// x̂ = (x−μ)·invStd; dβ = Σdy; dγ = Σdy·x̂; dx = γ·invStd/M·(M·dy − dβ − x̂·dγ), M = N·H·W.
export function batchNorm2dBackward(
  x: Float64Array,
  gamma: Float64Array,
  dy: Float64Array,
  mean: Float64Array,
  invStd: Float64Array,
  shape: BatchNormShape,
): BatchNormGrads {
  const { N, C, H, W } = shape;
  const HW = H * W;
  const M = N * HW;
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let sdy = 0;
    let sdyxh = 0;
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const j = at(n, c, i, C, HW);
        sdy += dy[j];
        sdyxh += dy[j] * (x[j] - mean[c]) * invStd[c];
      }
    dbeta[c] = sdy;
    dgamma[c] = sdyxh;
    const k = (gamma[c] * invStd[c]) / M;
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const j = at(n, c, i, C, HW);
        const xhat = (x[j] - mean[c]) * invStd[c];
        dx[j] = k * (M * dy[j] - sdy - xhat * sdyxh);
      }
  }
  return { dx, dgamma, dbeta };
}

// Evaluation mode (frozen statistics): y = γ·x̂ + β with x̂ = (x − r_μ)/√(r_σ² + ε), so
// dx = dy·γ/√(r_σ² + ε), dγ = Σdy·x̂, dβ = Σdy (sums over N, H, W per channel).
export function batchNorm2dEvalBackward(
  x: Float64Array,
  gamma: Float64Array,
  dy: Float64Array,
  runningMean: Float64Array,
  runningVar: Float64Array,
  shape: BatchNormShape,
): BatchNormGrads {
  const { N, C, H, W } = shape;
  const eps = shape.eps ?? 1e-5;
  const HW = H * W;
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const inv = 1 / Math.sqrt(runningVar[c] + eps);
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const j = at(n, c, i, C, HW);
        dx[j] = dy[j] * gamma[c] * inv;
        dgamma[c] += dy[j] * (x[j] - runningMean[c]) * inv;
        dbeta[c] += dy[j];
      }
  }
  return { dx, dgamma, dbeta };
}
