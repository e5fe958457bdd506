// Running sums that stay on the GPU during an epoch, so the loop reads back once per epoch, not per step.
//
// accumulate_v1:    sums[offset] += value[0]                                  one invocation
// count_correct_v1: sums[offset] += #{r : argmax_c logits[r, c] == target[r]}  one invocation looping rows
//   (first maximum wins on ties, as torch.argmax). Rows per batch are ≤ a few hundred and classes ~10, so one
//   invocation is cheaper than a reduction's second dispatch. Cost: rows·cols compares.
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

const countCorrectKernel = memoKernel(() => ({
  name: 'count_correct_v1',
  wgsl: /* wgsl */ `
struct Params { rows: u32, cols: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> target: array<i32>;
@group(0) @binding(3) var<storage, read_write> sums: array<f32>;
@compute @workgroup_size(1) fn main() {
  var correct = 0u;
  for (var r = 0u; r < p.rows; r++) {
    var best = 0u;
    for (var c = 1u; c < p.cols; c++) {
      if (logits[r * p.cols + c] > logits[r * p.cols + best]) { best = c; }
    }
    if (i32(best) == target[r]) { correct++; }
  }
  sums[p.offset] += f32(correct);
}`,
}));

/** sums[offset] += value[0] (e.g. a batch's mean loss into the epoch's sum). */
export function accumulate(gpu: Gpu, value: GPUBuffer, sums: GPUBuffer, offset = 0): void {
  gpu.dispatch({ kernel: accumulateKernel(), params: uniforms(offset), buffers: [value, sums], workgroups: [1] });
}

/** sums[offset] += number of rows whose highest score is at the target class. */
export function countCorrect(gpu: Gpu, logits: GPUBuffer, target: GPUBuffer, sums: GPUBuffer, s: { rows: number; cols: number; offset?: number }): void {
  gpu.dispatch({ kernel: countCorrectKernel(), params: uniforms(s.rows, s.cols, s.offset ?? 0), buffers: [logits, target, sums], workgroups: [1] });
}
