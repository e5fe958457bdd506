// Bad input ends in a typed error whose message names the op, the shapes and what to do.
import { describe, expect, it } from 'vitest';
import { DataError, LimitError, NoAdapterError, ShapeError, StateError } from '../../src/errors.js';
import { adapterSummary } from '../../src/gpu/device.js';
import { Gpu } from '../../src/gpu/runtime.js';
import * as F from '../../src/nn/ops.js';
import { setDefaultGpu, Tensor } from '../../src/nn/tensor.js';
import { useGpu, withOwnGpu } from '../helpers/gpu.js';

const ctx = useGpu({ tensors: true });

describe('clear errors', () => {
  it('mismatched shapes name the op and both shapes', () => {
    const x = F.zeros([4, 320]);
    const w = F.zeros([50, 300]);
    expect(() => F.linear(x, w)).toThrow(ShapeError);
    expect(() => F.linear(x, w)).toThrow(/linear: input \[4, 320\] has 320 features but weight \[50, 300\] expects 300/);
    expect(() => F.matmul(F.zeros([2, 3]), F.zeros([4, 5]))).toThrow(/matmul: inner sizes differ: a \[2, 3\] · b \[4, 5\]/);
    expect(() => F.conv2d(F.zeros([1, 3, 8, 8]), F.zeros([10, 1, 5, 5]))).toThrow(
      /conv2d: input \[1, 3, 8, 8\] has 3 channels but weight \[10, 1, 5, 5\] expects 1/,
    );
    expect(() => F.conv2d(F.zeros([1, 1, 4, 4]), F.zeros([2, 1, 5, 5]))).toThrow(/kernel 5x5 is larger than the padded input 4x4/);
    expect(() => F.add(F.zeros([2, 3]), F.zeros([3, 2]))).toThrow(/add: shapes \[2, 3\] and \[3, 2\] differ/);
    expect(() => F.maxPool2d(F.zeros([2, 3]))).toThrow(/maxPool2d: input must be 4-D \[N, C, H, W\], got \[2, 3\]/);
    expect(() => F.zeros([6]).reshape([4, -1])).toThrow(/reshape: cannot view \[6\] \(6 elements\) as \[4, -1\]/);
    expect(() => F.nllLoss(F.zeros([4, 10]), F.zeros([4]))).toThrow(/nllLoss: target must be an int32 tensor \[4\]/);
  });

  it('a dtype an op cannot take', () => {
    const labels = F.tensor([1, 2, 3, 4], [2, 2], { dtype: 'int32' });
    expect(() => F.relu(labels)).toThrow(/relu: input must be float32, got int32 \[2, 2\]/);
    expect(() => F.matmul(labels, F.zeros([2, 2]))).toThrow(/matmul: a must be float32, got int32 \[2, 2\]/);
  });

  it('data of the wrong length', () => {
    expect(() => F.tensor([1, 2, 3], [2, 2])).toThrow(DataError);
    expect(() => F.tensor([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\] \(4 elements\)/);
  });

  it('a tensor larger than the adapter binds', () => {
    const limit = ctx.gpu.adapter.limits.maxStorageBufferBindingSize;
    const n = Math.floor(limit / 4) + 1024;
    expect(() => Tensor.empty([n], { label: 'huge activations' })).toThrow(LimitError);
    expect(() => Tensor.empty([n], { label: 'huge activations' })).toThrow(
      /huge activations: needs \d+ bytes, more than this adapter binds/,
    );
  });

  it('using a disposed tensor, a tensor without a default Gpu, or a destroyed Gpu is a StateError', async () => {
    const t = F.zeros([3]);
    t.dispose();
    expect(() => F.relu(t)).toThrow(StateError);
    expect(() => F.relu(t)).toThrow(/was disposed/);
    setDefaultGpu(null);
    try {
      expect(() => F.zeros([3])).toThrow(StateError);
      expect(() => F.zeros([3])).toThrow(/no Gpu runtime: call `await init\(\)`/);
    } finally {
      setDefaultGpu(ctx.gpu);
    }
    expect(() => F.tensor([1, 2], [2]).backward()).toThrow(StateError);
    let buffer!: GPUBuffer;
    const destroyed = await withOwnGpu(async (gpu) => {
      buffer = gpu.pool.acquire(4, 'x');
      return gpu;
    });
    expect(() => destroyed.write(buffer, new Float32Array(1))).toThrow(StateError);
    expect(() => destroyed.write(buffer, new Float32Array(1))).toThrow(/this Gpu runtime was destroyed/);
  });

  it('a missing adapter says what to run', async () => {
    // Dawn has no D3D12 backend on Linux, so this finds no adapter, like a machine without any driver.
    const backend = process.platform === 'win32' ? 'metal' : 'd3d12';
    await expect(Gpu.create({ backend })).rejects.toThrow(NoAdapterError);
    await expect(Gpu.create({ backend })).rejects.toThrow(/No WebGPU adapter found for backend "\w+"\. Run `bash scripts\/setup.sh`/);
  });

  it('an adapter name matches in any case; one that matches no adapter is a NoAdapterError listing them', async () => {
    const err = await Gpu.create({ adapter: 'No-Such-GPU' }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(NoAdapterError);
    expect(err?.message).toMatch(/No WebGPU adapter found for adapter "No-Such-GPU" \(no adapter has it in its name, in any case\)/);
    // The first adapter Dawn lists, by its name as Dawn spells it and with every letter's case swapped: Dawn
    // itself matches names case-sensitively, so only our matching finds the second.
    const name = /Adapters Dawn sees here: \w+ "([^"]+)"/.exec(err?.message ?? '')?.[1];
    expect(name).toMatch(/[a-z]/i);
    const swapped = [...(name as string)].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');
    const opened: string[] = [];
    for (const adapter of [name as string, swapped]) {
      const gpu = await Gpu.create({ adapter });
      opened.push(adapterSummary(gpu.adapter));
      gpu.destroy();
    }
    expect(opened[1]).toBe(opened[0]);
  });
});
