// Running sums that stay on the GPU during an epoch, so the loop reads back once per epoch, not per step.
//
// accumulate_v1: sums[offset] += value[0], one invocation (a step's loss into the epoch's sum).
// The correct-prediction count is softmax.ts's correctCount / the fused loss's `correct` output.
import { type Gpu, memoKernel, uniforms } from './common.js';

const accumulateKernel = memoKernel(() => ({
  name: 'accumulate_v1',
  wgsl: /* wgsl */ `
struct Params { offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> value: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;
@compute @workgroup_size(1) fn main() { sums[p.offset] += value[0]; }`,
}));

/** sums[offset] += value[0] (e.g. a batch's mean loss into the epoch's sum). */
export function accumulate(gpu: Gpu, value: GPUBuffer, sums: GPUBuffer, offset = 0): void {
  gpu.dispatch({ kernel: accumulateKernel(), params: uniforms(offset), buffers: [value, sums], workgroups: [1] });
}
