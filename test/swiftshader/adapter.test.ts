// The `swiftshader` project of vitest.config.ts runs test/kernels on SwiftShader's Vulkan driver: this checks
// that it really does (a run that silently fell back to the default adapter would test nothing new).
import { expect, it } from 'vitest';
import { adapterSummary } from '../../src/gpu/device.js';
import { useGpu } from '../helpers/gpu.js';

const ctx = useGpu();

it('opens SwiftShader, a software adapter', () => {
  const a = ctx.gpu.adapter;
  expect(adapterSummary(a)).toMatch(/swiftshader/i);
  expect(a.kind).toBe('software');
});
