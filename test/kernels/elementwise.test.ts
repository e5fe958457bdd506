import { describe, expect, it } from 'vitest';
import { relu, reluBackward } from '../../src/shaders/elementwise.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

describe('relu', () => {
  for (const n of [1, 255, 257, 4099]) {
    it(`forward and backward, n=${n}`, async () => {
      const { gpu } = ctx;
      const x = randomArray(n, n);
      const dy = randomArray(n, n + 1);
      const xb = upload(gpu, x), dyb = upload(gpu, dy), yb = empty(gpu, n), dxb = empty(gpu, n);
      relu(gpu, xb, yb, n);
      reluBackward(gpu, xb, dyb, dxb, n);
      expectClose(await download(gpu, yb, n), ref.relu(x), { label: `relu n=${n}`, atol: 0, rtol: 1e-6 });
      expectClose(await download(gpu, dxb, n), ref.reluBackward(x, dy), { label: `relu backward n=${n}`, atol: 0, rtol: 1e-6 });
      for (const b of [xb, dyb, yb, dxb]) gpu.pool.release(b);
    });
  }
  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
