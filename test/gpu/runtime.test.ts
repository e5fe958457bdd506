// The runtime's contracts: errors surface as typed exceptions naming the kernel, the pool reuses and counts
// buffers, cached bind groups survive pool.trim(), and timestamps time recorded work.
import { describe, expect, it } from 'vitest';
import { GpuError, ShaderCompileError } from '../../src/errors.js';
import { sizeClass } from '../../src/gpu/buffer-pool.js';
import { declareKernel, launch } from '../../src/gpu/kernel.js';
import { relu } from '../../src/shaders/elementwise.js';
import { download, upload, useGpu, withOwnGpu } from '../helpers/gpu.js';

const ctx = useGpu();

describe('runtime', () => {
  it('a WGSL error is a ShaderCompileError naming the kernel and the line', async () => {
    // Its own device: the error poisons the runtime that saw it.
    await withOwnGpu(async (gpu) => {
      const x = gpu.pool.acquire(16, 'x');
      const broken = declareKernel({
        name: 'broken_kernel_v1',
        params: { n: 'u32' },
        buffers: {},
        wgsl: '@compute @workgroup_size(1) fn main() { let a: f32 = 1u; }',
      });
      launch(gpu, broken, { params: { n: 1 }, buffers: {}, workgroups: [1] });
      const line = broken.wgsl.split('\n').findIndex((l) => l.includes('let a: f32')) + 1; // after the generated header
      const err = await gpu.read(x, 4).catch((e) => e);
      expect(err).toBeInstanceOf(ShaderCompileError);
      expect(err.message).toMatch(new RegExp(`kernel broken_kernel_v1 failed to compile:\\n\\s+line ${line}:`));
    });
  });

  it('uniform arrays bound to ranges of one buffer: each window reads its own range', async () => {
    const { gpu } = ctx;
    const align = gpu.device.limits.minUniformBufferOffsetAlignment;
    const n = align / 4; // floats per window: one alignment apart, so the second starts where the first ends
    const x = upload(
      gpu,
      Float32Array.from({ length: 2 * n }, (_, i) => i * 0.5 - 3),
    );
    const y = gpu.pool.acquire(8 * n, 'y');
    const sum = declareKernel({
      name: 'test_windows_v1',
      buffers: { a: { uniform: 'vec4f', elements: n / 4 }, b: { uniform: 'vec4f', elements: n / 4 }, y: 'read_write' },
      wgsl: `@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
        let i = g.x;
        if (i < ${n}u) { y[i] = a[i / 4u][i % 4u]; y[${n}u + i] = a[i / 4u][i % 4u] + b[i / 4u][i % 4u]; } }`,
    });
    expect(sum.wgsl).toMatch(/@binding\(1\) var<uniform> a: array<vec4f, \d+>;/);
    const size = 4 * n;
    launch(gpu, sum, {
      buffers: { a: { buffer: x, offset: 0, size }, b: { buffer: x, offset: size, size }, y },
      workgroups: [Math.ceil(n / 64)],
    });
    const got = await download(gpu, y, 2 * n);
    const want = Float32Array.from({ length: 2 * n }, (_, i) => (i < n ? i * 0.5 - 3 : (i - n) * 0.5 - 3 + (i * 0.5 - 3)));
    expect(Array.from(got)).toEqual(Array.from(want));
    gpu.pool.release(x);
    gpu.pool.release(y);
  });

  it('binding one buffer as input and output of a kernel is refused, naming the kernel and the buffer', () => {
    const a = ctx.gpu.pool.acquire(16, 'activations');
    expect(() => relu(ctx.gpu, a, a, 4)).toThrow(GpuError);
    expect(() => relu(ctx.gpu, a, a, 4)).toThrow(/kernel relu_v1: buffer "activations" is bound twice, once writable/);
    ctx.gpu.pool.release(a);
  });

  it("a WebGPU validation error surfaces as a GpuError at the next read, with Dawn's message", async () => {
    await withOwnGpu(async (gpu) => {
      const small = gpu.pool.acquire(256, 'small buffer');
      const err = await gpu.read(small, 4096).catch((e) => e); // copy past the end of the buffer
      expect(err).toBeInstanceOf(GpuError);
      expect(err.message).toMatch(/small buffer/);
    });
  });

  it('the pool reuses freed buffers by size class and counts bytes', () => {
    const { pool } = ctx.gpu;
    const before = pool.stats();
    const a = pool.acquire(1000, 'a');
    expect(a.size).toBe(sizeClass(1000));
    expect(sizeClass(1000)).toBeGreaterThanOrEqual(1000);
    expect(sizeClass(1000)).toBeLessThanOrEqual(1.25 * 1024);
    pool.release(a);
    const b = pool.acquire(900, 'b');
    expect(b).toBe(a); // same class, reused
    expect(pool.stats().bytesInUse).toBe(before.bytesInUse + a.size);
    pool.release(b);
    expect(pool.stats().bytesInUse).toBe(before.bytesInUse);
  });

  it('results stay right across pool.trim(), which destroys buffers that cached bind groups refer to', async () => {
    const { gpu } = ctx;
    for (let round = 0; round < 3; round++) {
      const x = upload(gpu, [1, -2, 3, -4]);
      const y = gpu.pool.acquire(16, 'y');
      relu(gpu, x, y, 4);
      expect(Array.from(await download(gpu, y, 4))).toEqual([1, 0, 3, 0]);
      gpu.pool.release(x);
      gpu.pool.release(y);
      gpu.pool.trim();
    }
  });

  it('timeGpu returns the GPU time of the recorded work where timestamps exist', async () => {
    const { gpu } = ctx;
    const n = 1 << 20;
    const x = gpu.pool.acquire(4 * n, 'x'),
      y = gpu.pool.acquire(4 * n, 'y');
    const ms = await gpu.timeGpu(() => {
      for (let i = 0; i < 10; i++) relu(gpu, x, y, n);
    });
    if (gpu.device.features.has('timestamp-query')) expect(ms).toBeGreaterThan(0);
    else expect(ms).toBeNull();
    gpu.pool.release(x);
    gpu.pool.release(y);
  });
});
