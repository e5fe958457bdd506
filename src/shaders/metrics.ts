// Running sums that stay on the GPU during an epoch, so the loop reads back once per epoch, not per step.
//
// accumulate_v1: sums[offset] += value[0], one invocation (a step's loss into the epoch's sum).
// The correct-prediction count is softmax.ts's correctCount / the fused loss's `correct` output.
// A single kernel, no variants: no registry.
import { checkBuffers, declareKernel, launch } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import { memoKernel } from './wgsl.js';

const accumulateKernel = memoKernel(() =>
  declareKernel({
    name: 'accumulate_v1',
    params: { offset: 'u32' },
    buffers: { value: 'read', sums: 'read_write' },
    wgsl: '@compute @workgroup_size(1) fn main() { sums[p.offset] += value[0]; }',
  }),
);

/** sums[offset] += value[0] (e.g. a batch's mean loss into the epoch's sum). */
export function accumulate(gpu: Gpu, value: GPUBuffer, sums: GPUBuffer, offset = 0): void {
  checkBuffers('accumulate', { value: [value, 1], sums: [sums, offset + 1] });
  launch(gpu, accumulateKernel(), { params: { offset }, buffers: { value, sums }, workgroups: [1] });
}
