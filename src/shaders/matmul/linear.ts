// The linear layer in PyTorch's layout, x [batch,in], w [out,in], b [out]: y [batch,out] = x·wᵀ + b, the
// bias added in the matmul's epilogue (and, for relu(linear(x)), the ReLU too). Backward: dx = dy·w (matmul),
// dw = dyᵀ·x (matmul, transA) with db = Σ_rows dy as the row sums of dyᵀ in the same dispatch; after a fused
// ReLU, both products read dy masked by the output (y > 0), so the ReLU's backward costs no dispatch either.
// Also the bias kernels on their own:
//   bias_add_v1    y[r,c] = x[r,c] + b[c], one invocation per element (in place when x and y are one buffer).
//   bias_grad_v1   db[c] = Σ_r dy[r,c], one invocation per column looping over the rows (software adapters).
//   bias_grad_v2   the same as a workgroup reduction: 16 columns x 16 row-strides per workgroup (GPUs).

import { ShapeError } from '../../errors.js';
import { declareKernel, launch } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { reluBackward } from '../elementwise.js';
import { type Cost, defineOp } from '../op.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel, treeReduction } from '../wgsl.js';
import { MATMUL, type MatmulVariant, matmulBias } from './index.js';

// ---- bias add ------------------------------------------------------------------------------------------------

export interface BiasSizes {
  rows: number;
  cols: number;
}

const BIAS_WG = 256;

const biasAddKernel = memoKernel((inPlace: boolean) =>
  declareKernel({
    name: inPlace ? 'bias_add_v1_inplace' : 'bias_add_v1',
    params: { n: 'u32', cols: 'u32' },
    buffers: inPlace ? { b: 'read', y: 'read_write' } : { x: 'read', b: 'read', y: 'read_write' },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${BIAS_WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(BIAS_WG)};
  if (i < p.n) { y[i] = ${inPlace ? 'y[i]' : 'x[i]'} + b[i % p.cols]; }
}`,
  }),
);

/** y[r,c] = x[r,c] + b[c] for a [rows, cols] matrix; x and y may be the same buffer. */
export function biasAdd(gpu: Gpu, x: GPUBuffer, b: GPUBuffer, y: GPUBuffer, { rows, cols }: BiasSizes): void {
  const n = rows * cols;
  if (n === 0) return;
  const inPlace = x === y;
  launch(gpu, biasAddKernel(inPlace), { params: { n, cols }, buffers: { x, b, y }, workgroups: grid1d(n, BIAS_WG) });
}
export const biasAddCost = ({ rows, cols }: BiasSizes): Cost => ({ flops: rows * cols, bytes: 4 * (2 * rows * cols + cols) });

// ---- bias gradient -------------------------------------------------------------------------------------------

export type BiasGradVariant = 'v1' | 'v2';

export interface BiasGradSizes extends BiasSizes {
  /** db += Σ_rows dy instead of db = Σ_rows dy. */
  accumulate?: boolean;
  /** Force a variant; by default v1 on software adapters, v2 on GPUs. */
  variant?: BiasGradVariant;
}

const BG1_WG = 64;
const BG2_T = 16;
const BIAS_GRAD_DECL = { params: { rows: 'u32', cols: 'u32', accumulate: 'u32' }, buffers: { dy: 'read', db: 'read_write' } } as const;

const biasGradV1Kernel = memoKernel(() =>
  declareKernel({
    name: 'bias_grad_v1',
    ...BIAS_GRAD_DECL,
    wgsl: /* wgsl */ `
@compute @workgroup_size(${BG1_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.cols + j]; }
  if (p.accumulate != 0u) { s += db[j]; }
  db[j] = s;
}`,
  }),
);

const biasGradV2Kernel = memoKernel(() =>
  declareKernel({
    name: 'bias_grad_v2',
    ...BIAS_GRAD_DECL,
    wgsl: /* wgsl */ `
${treeReduction({ fn: 'columnSum', type: 'f32', size: BG2_T, lanes: BG2_T, to: 'first' })}
@compute @workgroup_size(${BG2_T}, ${BG2_T}) fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let j = wg.x * ${BG2_T}u + lid.x;
  var s = 0.0;
  if (j < p.cols) {
    for (var r = lid.y; r < p.rows; r += ${BG2_T}u) { s += dy[r * p.cols + j]; }
  }
  let total = columnSum(lid.y, lid.x, s);
  if (lid.y == 0u && j < p.cols) { db[j] = total + select(0.0, db[j], p.accumulate != 0u); }
}`,
  }),
);

export const BIAS_GRAD = defineOp<BiasGradSizes, { dy: GPUBuffer; db: GPUBuffer }, BiasGradVariant>({
  name: 'bias_grad',
  variants: {
    v1: {
      summary: 'one invocation per column, a serial loop over the rows: software adapters',
      run: (gpu, buffers, s) =>
        launch(gpu, biasGradV1Kernel(), {
          params: { rows: s.rows, cols: s.cols, accumulate: +!!s.accumulate },
          buffers,
          workgroups: [Math.ceil(s.cols / BG1_WG)],
        }),
    },
    v2: {
      summary: 'workgroup tree reduction over row strides: GPUs',
      run: (gpu, buffers, s) =>
        launch(gpu, biasGradV2Kernel(), {
          params: { rows: s.rows, cols: s.cols, accumulate: +!!s.accumulate },
          buffers,
          workgroups: [Math.ceil(s.cols / BG2_T)],
        }),
    },
  },
  prefer: (gpu) => (gpu.isSoftware ? ['v1'] : ['v2']),
  cost: ({ rows, cols }) => ({ flops: rows * cols, bytes: 4 * (rows * cols + cols) }),
  needs: ({ rows, cols }, { dy, db }) => ({ dy: [dy, rows * cols], db: [db, cols] }),
});

// db[c] (+)= Σ_r dy[r,c]  (the bias's gradient: the bias is broadcast over rows in the forward)
export function biasGrad(gpu: Gpu, dy: GPUBuffer, db: GPUBuffer, sizes: BiasGradSizes): void {
  if (sizes.cols === 0) return;
  BIAS_GRAD.run(gpu, { dy, db }, sizes);
}
export const biasGradCost = BIAS_GRAD.cost;

// ---- linear layer ----------------------------------------------------------------------------------------------

export interface LinearSizes {
  batch: number;
  inFeatures: number;
  outFeatures: number;
  /** y = relu(x·wᵀ + b) (the ReLU in the matmul's epilogue). */
  relu?: boolean;
  /** Forces the matmul variant (tests and benchmarks). */
  variant?: MatmulVariant;
}

export interface LinearBackwardSizes extends LinearSizes {
  /** dw += and db += (parameter gradients accumulate across backward calls); dx is overwritten unless accumulateDx. */
  accumulate?: boolean;
  /** dx += dy·w (when x feeds more than one op). */
  accumulateDx?: boolean;
  /** Forces the bias-gradient variant (used only when db is wanted without dw). */
  biasGradVariant?: BiasGradVariant;
  /** With relu: the forward's output y, whose y > 0 masks dy (dy·(y > 0) is the gradient before the ReLU). */
  reluOutput?: GPUBuffer;
}

/** y[batch,out] = x[batch,in]·wᵀ + b, the bias added in the matmul's epilogue; `b` may be null. */
export function linearForward(gpu: Gpu, x: GPUBuffer, w: GPUBuffer, b: GPUBuffer | null, y: GPUBuffer, s: LinearSizes): void {
  matmulBias(gpu, x, w, b, y, { M: s.batch, N: s.outFeatures, K: s.inFeatures, transB: true, relu: s.relu, variant: s.variant });
}

/** Gradients of y = x·wᵀ + b; pass null for any of dx, dw, db that is not needed. */
export function linearBackward(
  gpu: Gpu,
  x: GPUBuffer,
  w: GPUBuffer,
  dy: GPUBuffer,
  dx: GPUBuffer | null,
  dw: GPUBuffer | null,
  db: GPUBuffer | null,
  s: LinearBackwardSizes,
): void {
  const { batch, inFeatures, outFeatures, variant } = s;
  if (s.relu && !s.reluOutput) throw new ShapeError('linearBackward: relu needs the forward output (reluOutput) to mask dy');
  const maskA = s.relu ? s.reluOutput : null;
  // dx[batch,in] = dy'[batch,out]·w[out,in], dy' = dy·(y > 0) after a ReLU
  if (dx) matmulBias(gpu, dy, w, null, dx, { M: batch, N: inFeatures, K: outFeatures, accumulate: s.accumulateDx, variant }, { maskA });
  // dw[out,in] = dy'ᵀ·x: dy is stored [batch,out] = [K,M]; db[out] = Σ_batch dy', the row sums of dy'ᵀ
  const wSizes = { M: outFeatures, N: inFeatures, K: batch, transA: true, accumulate: s.accumulate, variant };
  if (dw && inFeatures > 0) matmulBias(gpu, dy, x, null, dw, wSizes, { maskA, rowSums: db });
  else if (db && maskA) {
    const masked = gpu.pool.acquire(4 * batch * outFeatures, 'linear masked dy');
    reluBackward(gpu, maskA, dy, masked, batch * outFeatures);
    biasGrad(gpu, masked, db, { rows: batch, cols: outFeatures, accumulate: s.accumulate, variant: s.biasGradVariant });
    gpu.pool.release(masked); // safe: the queue runs the recorded dispatches before any later use of the buffer
  } else if (db) biasGrad(gpu, dy, db, { rows: batch, cols: outFeatures, accumulate: s.accumulate, variant: s.biasGradVariant });
}

/** The forward's cost: the product plus one add per output for the bias. */
export const linearCost = ({ batch, inFeatures, outFeatures }: LinearSizes): Cost => {
  const m = MATMUL.cost({ M: batch, N: outFeatures, K: inFeatures });
  return { flops: m.flops + batch * outFeatures, bytes: m.bytes + 4 * outFeatures };
};

export const linearBackwardCost = ({ batch, inFeatures, outFeatures }: LinearSizes): Cost => {
  const dx = MATMUL.cost({ M: batch, N: inFeatures, K: outFeatures });
  const dw = MATMUL.cost({ M: outFeatures, N: inFeatures, K: batch });
  const db = BIAS_GRAD.cost({ rows: batch, cols: outFeatures });
  return { flops: dx.flops + dw.flops + db.flops, bytes: dx.bytes + dw.bytes + db.bytes };
};
