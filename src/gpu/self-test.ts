// Does the adapter compute? Dawn's null backend (and a broken driver) opens a device, compiles every kernel
// and maps buffers without complaint, but runs nothing: a training run on it "succeeds" with nonsense. So
// before any work, `Gpu.create` runs one small kernel and compares its result with the CPU's; an adapter that
// gets it wrong is refused with a NoAdapterError that says what to do (the platform's advice: platform-node.ts in
// Node, platform-browser.ts in a page, where the test runs too).
//
// self_test_v1: y[i] = a·x[i] + sqrt(i) over 256 elements (one multiply-add, one sqrt, integer-to-float),
// one invocation per element in workgroups of 64; x[i] = i/8 − 5, a = 1.5.
import { NoAdapterError } from '../errors.js';
import { adapterSummary } from './device.js';
import { declareKernel, launch } from './kernel.js';
import { BROKEN_ADAPTER_HINT } from './platform-node.js';
import type { Gpu } from './runtime.js';

const N = 256;
const A = 1.5;

const selfTestKernel = declareKernel({
  name: 'self_test_v1',
  params: { n: 'u32', a: 'f32' },
  buffers: { x: 'read', y: 'read_write' },
  wgsl: /* wgsl */ `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i < p.n) { y[i] = p.a * x[i] + sqrt(f32(i)); }
}`,
});

/** Runs the self-test kernel; throws a NoAdapterError when its result is not the CPU's. */
export async function checkAdapterComputes(gpu: Gpu): Promise<void> {
  const x = Float32Array.from({ length: N }, (_, i) => i / 8 - 5);
  // Buffers of its own rather than the pool's, so the pool's counts start at zero for the caller.
  const usage = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
  const xb = gpu.device.createBuffer({ size: N * 4, usage, label: 'self-test input' });
  const yb = gpu.device.createBuffer({ size: N * 4, usage, label: 'self-test output' });
  try {
    gpu.write(xb, x);
    launch(gpu, selfTestKernel, { params: { n: N, a: A }, buffers: { x: xb, y: yb }, workgroups: [N / 64] });
    const refuse = (what: string) =>
      new NoAdapterError(`the WebGPU adapter ${adapterSummary(gpu.adapter)} does not compute: ${what}. ${BROKEN_ADAPTER_HINT}`);
    let y: Float32Array;
    try {
      // The readback also brings the fault word, which must read 0: no kernel has run yet.
      y = new Float32Array(await gpu.read(yb, N * 4));
    } catch (e) {
      throw refuse(`reading back a test kernel's result failed (${(e as Error).message})`);
    }
    for (let i = 0; i < N; i++) {
      const want = Math.fround(A * x[i]) + Math.sqrt(i);
      if (!(Math.abs(y[i] - want) <= 1e-5 * Math.max(1, Math.abs(want)))) {
        throw refuse(`a test kernel gave ${y[i]} where ${want.toPrecision(7)} was expected (element ${i} of ${N})`);
      }
    }
  } finally {
    xb.destroy();
    yb.destroy();
  }
}
