// Full reductions of a flat float32 array to one float: out[0] = α·Σ x[i] (+ out[0] with accumulate).
// sum (α = 1) and mean (α = 1/n). Cost: n flops, 4n bytes.
//
// Both variants run at most two dispatches of one kernel, "reduce <len> values in <chunk>s to one value per
// workgroup slot": pass 1 reduces x to partial sums in a pooled scratch buffer, pass 2 reduces those to
// out[0] (one pass when x fits one chunk). Loads are vec4 when the buffer holds whole vec4s (the tail is masked).
//
// reduce_sum_v1  barrier-free, for llvmpipe: invocation g sums the contiguous chunk [g·CH, (g+1)·CH) in
//                registers; pass 2 is a single invocation over ≤ 1024 partials. llvmpipe runs each workgroup
//                on one CPU thread, so a serial loop per SIMD lane is the cheap way to reduce there.
// reduce_sum_v2  workgroup tree reduction, for GPUs: 256 invocations per workgroup read grid-strided vec4s
//                (coalesced), then halve in workgroup memory (treeReduction); pass 2 is one workgroup.
// Chosen (the REDUCE_SUM registry): v1 on software adapters, v2 on GPUs; `variant` forces one.
import { declareKernel, launch } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import { type Cost, defineOp } from './op.js';
import { memoKernel, treeReduction } from './wgsl.js';

export type ReduceVariant = 'v1' | 'v2';

export interface ReduceSizes {
  n: number;
  /** out[0] += result instead of out[0] = result (e.g. a running sum over an epoch). */
  accumulate?: boolean;
  /** Force a variant; by default v1 on software adapters, v2 on GPUs. */
  variant?: ReduceVariant;
}

const V1_MAX_PARTIALS = 1024;
const V1_MIN_CHUNK = 256;
const V2_WG = 256;
const V2_MAX_GROUPS = 1024;

// One kernel per (variant, vec4 loads, accumulate). Params: len values in x, chunk per slot, α.
const reduceKernel = memoKernel((variant: ReduceVariant, vec: boolean, accumulate: boolean) => {
  const head = /* wgsl */ `
alias T = ${vec ? 'vec4<f32>' : 'f32'};
// Element k of x (a vec4 holds elements 4k..4k+3), zero past len.
fn load(k: u32) -> T {
  ${vec ? 'return select(T(), x[k], vec4u(4u * k) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.len));' : 'return x[k];'}
}
fn hsum(v: T) -> f32 { return ${vec ? 'v.x + v.y + v.z + v.w' : 'v'}; }
fn store(g: u32, s: f32) { y[g] = p.alpha * s${accumulate ? ' + y[g]' : ''}; }`;
  const W = vec ? 4 : 1;
  const body =
    variant === 'v1'
      ? /* wgsl */ `${head}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x;
  let begin = g * p.chunk;
  if (g != 0u && begin >= p.len) { return; } // slot 0 always stores (n = 0 gives 0)
  let end = min(begin + p.chunk, p.len);
  var s = T();
  for (var k = begin / ${W}u; k < (end + ${W - 1}u) / ${W}u; k++) { s += load(k); }
  store(g, hsum(s));
}`
      : /* wgsl */ `${head}
${treeReduction({ fn: 'workgroupSum', type: 'f32', size: V2_WG, to: 'first' })}
@compute @workgroup_size(${V2_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                           @builtin(local_invocation_index) t: u32) {
  var s = T();
  let count = (p.len + ${W - 1}u) / ${W}u;
  for (var k = wid.x * ${V2_WG}u + t; k < count; k += nwg.x * ${V2_WG}u) { s += load(k); }
  let total = workgroupSum(t, hsum(s));
  if (t == 0u) { store(wid.x, total); }
}`;
  return declareKernel({
    name: `reduce_sum_${variant}${vec ? '_vec4' : ''}${accumulate ? '_acc' : ''}`,
    params: { len: 'u32', chunk: 'u32', alpha: 'f32' },
    buffers: { x: { read: vec ? 'vec4f' : 'f32' }, y: 'read_write' },
    wgsl: body,
  });
});

type ReduceRunSizes = ReduceSizes & { alpha?: number };
type ReduceBuffers = { x: GPUBuffer; out: GPUBuffer };

/** Pass 1 (when x is more than one slot) and pass 2 of `variant`: out[0] = α·Σ_{i<n} x[i] (+ out[0]). */
const runReduce =
  (variant: ReduceVariant) =>
  (gpu: Gpu, { x, out }: ReduceBuffers, s: ReduceRunSizes) => {
    const { n } = s;
    const accumulate = !!s.accumulate;
    const alpha = s.alpha ?? 1;
    const vecX = x.size >= Math.max(1, Math.ceil(n / 4)) * 16;
    // Slots of pass 1, and what each reduces.
    let slots: number, chunk: number;
    if (variant === 'v1') {
      chunk = Math.max(V1_MIN_CHUNK, Math.ceil(n / V1_MAX_PARTIALS / 4) * 4);
      slots = Math.max(1, Math.ceil(n / chunk));
    } else {
      slots = Math.min(V2_MAX_GROUPS, Math.max(1, Math.ceil(n / (V2_WG * 16))));
      chunk = 0; // v2 strides over the whole array
    }
    const final = (src: GPUBuffer, len: number, vec: boolean) =>
      launch(gpu, reduceKernel(variant, vec, accumulate), {
        params: { len, chunk: len, alpha },
        buffers: { x: src, y: out },
        workgroups: [1],
      });
    if (slots === 1) return final(x, n, vecX);
    const partials = gpu.pool.acquire(slots * 4, 'reduce partials');
    launch(gpu, reduceKernel(variant, vecX, false), {
      params: { len: n, chunk, alpha: 1 },
      buffers: { x, y: partials },
      workgroups: [variant === 'v1' ? Math.ceil(slots / 64) : slots],
    });
    final(partials, slots, true); // pool buffers hold whole vec4s
    gpu.pool.release(partials); // safe: the queue runs in order, and later users are recorded after these reads
  };

export const REDUCE_SUM = defineOp<ReduceRunSizes, ReduceBuffers, ReduceVariant>({
  name: 'reduce_sum',
  variants: {
    v1: { summary: 'serial sums over contiguous chunks, no barriers: software adapters', run: runReduce('v1') },
    v2: { summary: 'grid-strided loads and a workgroup tree reduction: GPUs', run: runReduce('v2') },
  },
  prefer: (gpu) => (gpu.isSoftware ? ['v1'] : ['v2']),
  cost: ({ n }) => ({ flops: n, bytes: 4 * n + 4 }),
  needs: ({ n }, { x, out }) => ({ x: [x, n], out: [out, 1] }),
});

/** out[0] = α·Σ_{i<n} x[i] (+ out[0] with accumulate), in one or two dispatches. */
export function reduceSum(gpu: Gpu, x: GPUBuffer, out: GPUBuffer, s: ReduceRunSizes): void {
  REDUCE_SUM.run(gpu, { x, out }, s);
}

/** out[0] = Σ x[i] (+ out[0] with accumulate). */
export function sum(gpu: Gpu, x: GPUBuffer, out: GPUBuffer, s: ReduceSizes): void {
  reduceSum(gpu, x, out, s);
}

/** out[0] = (1/n)·Σ x[i] (+ out[0] with accumulate). */
export function mean(gpu: Gpu, x: GPUBuffer, out: GPUBuffer, s: ReduceSizes): void {
  reduceSum(gpu, x, out, { ...s, alpha: 1 / s.n });
}
// backward of sum: dx[i] = dy; of mean: dx[i] = dy / n  (a fill)

export const reduceCost = ({ n }: { n: number }): Cost => REDUCE_SUM.cost({ n });
