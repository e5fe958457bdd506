// A data set that lives on the GPU: all images as bytes (four to a u32 word, so 60,000 MNIST images take
// 47 MB, under the 128 MiB binding limit that float32 would exceed) and labels as i32, uploaded once.
// Each epoch uploads one index list (a shuffled permutation); each step gathers its batch on the GPU.
import { DataError, LimitError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { Tensor } from '../nn/tensor.js';
import { gatherBatch } from '../shaders/gather.js';
import type { Dataset } from './dataset.js';

export class GpuDataset {
  private constructor(
    readonly gpu: Gpu,
    readonly name: string,
    readonly ds: Dataset,
    private readonly images: GPUBuffer,
    private readonly labels: GPUBuffer,
  ) {}

  static upload(gpu: Gpu, ds: Dataset, name: string): GpuDataset {
    if (ds.labels.length !== ds.count || ds.images.length !== ds.count * ds.rows * ds.cols) {
      throw new DataError(
        `${name} set: ${ds.count} images of ${ds.rows}x${ds.cols} need ${ds.count * ds.rows * ds.cols} pixels and ${ds.count} labels, got ${ds.images.length} and ${ds.labels.length}`,
      );
    }
    const bytes = Math.ceil(ds.images.length / 4) * 4;
    const limit = gpu.adapter.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new LimitError(`${name} set: ${ds.count} images take ${bytes} bytes, more than this adapter binds (${limit}); use --limit`);
    }
    const padded = new Uint8Array(bytes);
    padded.set(ds.images);
    const images = gpu.pool.acquire(bytes, `${name} images`);
    gpu.write(images, new Uint32Array(padded.buffer));
    const labels = gpu.pool.acquire(ds.count * 4, `${name} labels`);
    gpu.write(labels, Int32Array.from(ds.labels));
    return new GpuDataset(gpu, name, ds, images, labels);
  }

  get pixels(): number {
    return this.ds.rows * this.ds.cols;
  }

  /** Uploads an index list (sample numbers into this data set) for `batch()` to read. */
  indexList(indices: Uint32Array): Tensor {
    const t = Tensor.empty([indices.length], { gpu: this.gpu, dtype: 'int32', label: `${this.name} indices` });
    this.gpu.write(t.buffer, indices);
    return t;
  }

  /** Images [B, 1, rows, cols] and labels [B] for positions offset..offset+B of an index list. */
  batch(indices: Tensor, offset: number, batch: number, norm: { mean: number; std: number }): { x: Tensor; y: Tensor } {
    const x = Tensor.empty([batch, 1, this.ds.rows, this.ds.cols], { gpu: this.gpu, label: `${this.name} batch` });
    const y = Tensor.empty([batch], { gpu: this.gpu, dtype: 'int32', label: `${this.name} labels batch` });
    const count = this.ds.count;
    gatherBatch(this.gpu, this.images, this.labels, indices.buffer, x.buffer, y.buffer, {
      batch,
      offset,
      pixels: this.pixels,
      ...norm,
      count,
    });
    return { x, y };
  }

  dispose(): void {
    this.gpu.pool.release(this.images);
    this.gpu.pool.release(this.labels);
  }
}
