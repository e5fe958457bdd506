// Float64 reference: matrix multiply, linear layer, bias. Row-major throughout.

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

// C[M,N] = op(A)·op(B); A stored [M,K] ([K,M] if transA), B stored [K,N] ([N,K] if transB).
export function matmul(a: Float64Array, b: Float64Array, M: number, K: number, N: number, opts: MatmulOptions = {}): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const aik = opts.transA ? a[k * M + i] : a[i * K + k];
        const bkj = opts.transB ? b[j * K + k] : b[k * N + j];
        acc += aik * bkj;
      }
      c[i * N + j] = acc;
    }
  }
  return c;
}

// y[rows,cols] = x[rows,cols] + b[cols] (bias broadcast over rows).
export function biasAdd(x: Float64Array, b: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] + b[c];
  return y;
}

// db[cols] = Σ_rows dy[row, col].
export function biasGrad(dy: Float64Array, rows: number, cols: number): Float64Array {
  const db = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) db[c] += dy[r * cols + c];
  return db;
}

// y[batch,outF] = x[batch,inF]·wᵀ + b, with w stored [outF,inF] (PyTorch layout).
export function linear(x: Float64Array, w: Float64Array, b: Float64Array | null, batch: number, inF: number, outF: number): Float64Array {
  const y = matmul(x, w, batch, inF, outF, { transB: true });
  return b ? biasAdd(y, b, batch, outF) : y;
}

export interface LinearGrads {
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

// dx = dy·w [batch,inF];  dw = dyᵀ·x [outF,inF];  db = Σ_batch dy [outF].
export function linearBackward(x: Float64Array, w: Float64Array, dy: Float64Array, batch: number, inF: number, outF: number): LinearGrads {
  return {
    dx: matmul(dy, w, batch, outF, inF),
    dw: matmul(dy, x, outF, batch, inF, { transA: true }),
    db: biasGrad(dy, batch, outF),
  };
}
