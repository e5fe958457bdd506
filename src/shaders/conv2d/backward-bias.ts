// Backward-bias kernels: db[o] (+)= Σ_{n,oh,ow} dy[n,o,oh,ow] (see index.ts for which variant is for what).
// Buffers dy, db; uniforms N, O, plane = OH·OW, accumulate.
import { declareKernel, launch } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel, treeReduction } from '../wgsl.js';
import { WG_V1 } from './direct.js';
import { sumPartials } from './sum-partials.js';

export interface BackwardBiasArgs {
  N: number;
  O: number;
  /** OH·OW. */
  plane: number;
  accumulate: boolean;
}

export interface BackwardBiasBuffers {
  dy: GPUBuffer;
  db: GPUBuffer;
}

const PARAMS = { N: 'u32', O: 'u32', plane: 'u32', accumulate: 'u32' } as const;
const BUFFERS = { dy: 'read', db: 'read_write' } as const;
const params = (a: BackwardBiasArgs) => ({ N: a.N, O: a.O, plane: a.plane, accumulate: +a.accumulate });

// ---- v1: one db element per invocation ---------------------------------------------------------------------

const backwardBiasV1Kernel = memoKernel(() =>
  declareKernel({
    name: 'conv2d_bwd_bias_v1',
    params: PARAMS,
    buffers: BUFFERS,
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let o = ${FLAT_INDEX(WG_V1)};
  if (o >= p.O) { return; }
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let base = (n * p.O + o) * p.plane;
    for (var i = 0u; i < p.plane; i++) { acc += dy[base + i]; }
  }
  db[o] = select(acc, db[o] + acc, p.accumulate != 0u);
}`,
  }),
);

export function backwardBiasV1(gpu: Gpu, a: BackwardBiasArgs, buffers: BackwardBiasBuffers): void {
  launch(gpu, backwardBiasV1Kernel(), { params: params(a), buffers: { ...buffers }, workgroups: grid1d(a.O, WG_V1) });
}

// ---- v2: one invocation per (n, o) plane, then conv2d_sum_partials over n (software adapters) ---------------

// First pass: part[n·O + o] = Σ of the (n, o) plane (db is bound to the partial sums).
const backwardBiasV2Kernel = memoKernel(() =>
  declareKernel({
    name: 'conv2d_bwd_bias_v2',
    params: PARAMS,
    buffers: BUFFERS,
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let j = ${FLAT_INDEX(WG_V1)};
  if (j >= p.N * p.O) { return; }
  let base = j * p.plane;
  var acc = 0.0;
  for (var i = 0u; i < p.plane; i++) { acc += dy[base + i]; }
  db[j] = acc;
}`,
  }),
);

export function backwardBiasV2(gpu: Gpu, a: BackwardBiasArgs, { dy, db }: BackwardBiasBuffers): void {
  const part = gpu.pool.acquire(4 * a.N * a.O, 'conv2d db partial sums');
  launch(gpu, backwardBiasV2Kernel(), { params: params(a), buffers: { dy, db: part }, workgroups: grid1d(a.N * a.O, WG_V1) });
  sumPartials(gpu, { part, out: db, M: a.O }, a.N, a.accumulate);
  gpu.pool.release(part); // safe: the queue runs the recorded dispatches before any later use of the buffer
}

// ---- v3: a workgroup per o, tree reduction in workgroup memory (GPUs) -------------------------------------

const WG_R = 64;

const backwardBiasV3Kernel = memoKernel(() =>
  declareKernel({
    name: 'conv2d_bwd_bias_v3',
    params: PARAMS,
    buffers: BUFFERS,
    wgsl: /* wgsl */ `${treeReduction({ fn: 'workgroupSum', type: 'f32', size: WG_R, to: 'first' })}
@compute @workgroup_size(${WG_R}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = wid.x;
  var acc = 0.0;
  for (var r = lid.x; r < p.N * p.plane; r += ${WG_R}u) {
    acc += dy[((r / p.plane) * p.O + o) * p.plane + r % p.plane];
  }
  let total = workgroupSum(lid.x, acc);
  if (lid.x == 0u) { db[o] = select(total, db[o] + total, p.accumulate != 0u); }
}`,
  }),
);

export function backwardBiasV3(gpu: Gpu, a: BackwardBiasArgs, buffers: BackwardBiasBuffers): void {
  launch(gpu, backwardBiasV3Kernel(), { params: params(a), buffers: { ...buffers }, workgroups: [a.O] });
}
