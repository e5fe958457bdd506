// Float64 reference: row-wise log-softmax, negative log-likelihood, cross-entropy. x is [rows, cols].

// y[r,j] = x[r,j] − max_r − log Σ_k exp(x[r,k] − max_r).
export function logSoftmax(x: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[r * cols + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j] - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < cols; j++) y[r * cols + j] = x[r * cols + j] - lse;
  }
  return y;
}

// dx[r,j] = dy[r,j] − exp(y[r,j])·Σ_k dy[r,k], where y is the log-softmax output.
export function logSoftmaxBackward(y: Float64Array, dy: Float64Array, rows: number, cols: number): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += dy[r * cols + j];
    for (let j = 0; j < cols; j++) dx[r * cols + j] = dy[r * cols + j] - Math.exp(y[r * cols + j]) * s;
  }
  return dx;
}

// L = −(1/rows)·Σ_r logp[r, target[r]] (mean reduction).
export function nllLoss(logp: Float64Array, target: Int32Array, rows: number, cols: number): number {
  let s = 0;
  for (let r = 0; r < rows; r++) s += logp[r * cols + target[r]];
  return -s / rows;
}

// dL/dlogp[r,j] = −1/rows if j = target[r], else 0.
export function nllLossBackward(target: Int32Array, rows: number, cols: number): Float64Array {
  const d = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) d[r * cols + target[r]] = -1 / rows;
  return d;
}

// L = nllLoss(logSoftmax(logits), target), mean over rows.
export function crossEntropyFromLogits(logits: Float64Array, target: Int32Array, rows: number, cols: number): number {
  return nllLoss(logSoftmax(logits, rows, cols), target, rows, cols);
}

// dL/dlogits[r,j] = (softmax(logits)[r,j] − [j = target[r]]) / rows.
export function crossEntropyFromLogitsBackward(logits: Float64Array, target: Int32Array, rows: number, cols: number): Float64Array {
  const y = logSoftmax(logits, rows, cols);
  const d = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < cols; j++) d[r * cols + j] = (Math.exp(y[r * cols + j]) - (j === target[r] ? 1 : 0)) / rows;
  return d;
}
