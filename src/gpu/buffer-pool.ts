// A pool of storage buffers bucketed by size, so a training step reuses last step's buffers instead of
// allocating. Size classes are 2^k * {1, 1.25, 1.5, 1.75} (at most 25% waste). It counts bytes in use and
// bytes allocated, which the memory test watches across steps.
import { LimitError } from '../errors.js';

// STORAGE | COPY_SRC | COPY_DST | UNIFORM (constants: globals may not be installed yet); UNIFORM for the kernels
// that read a window of a tensor as a uniform array (gpu/kernel.ts)
const USAGE_STORAGE = 0x80 | 0x04 | 0x08 | 0x40;

/** The size class a request of `bytes` is served from: a multiple of 256 within 25% above `bytes`. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  const k = 2 ** Math.floor(Math.log2(b));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) {
    const s = Math.ceil((k * f) / 256) * 256;
    if (s >= b) return s;
  }
  return 2 * k;
}

export interface PoolStats {
  bytesInUse: number;
  bytesAllocated: number;
  buffersInUse: number;
  buffersAllocated: number;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly inUse = new Set<GPUBuffer>();
  private bytesInUse = 0;
  private bytesAllocated = 0;
  private buffersAllocated = 0;
  private readonly owned = new WeakSet<GPUBuffer>();
  /** Bumped by trim(): anything cached about pool buffers (bind groups) from before is stale. */
  generation = 0;

  constructor(private readonly device: GPUDevice) {}

  /** A storage buffer of at least `bytes` bytes (contents undefined). `label` names it in GPU errors. */
  acquire(bytes: number, label: string): GPUBuffer {
    const size = sizeClass(bytes);
    const limit = Math.min(this.device.limits.maxStorageBufferBindingSize, this.device.limits.maxBufferSize);
    if (size > limit) {
      throw new LimitError(
        `${label}: needs ${bytes} bytes, more than this adapter binds in one buffer (${limit} bytes). ` +
          'Use a smaller batch or split the tensor.',
      );
    }
    let buffer = this.free.get(size)?.pop();
    if (!buffer) {
      buffer = this.device.createBuffer({ size, usage: USAGE_STORAGE, label });
      this.owned.add(buffer);
      this.bytesAllocated += size;
      this.buffersAllocated++;
    } else {
      buffer.label = label;
    }
    this.inUse.add(buffer);
    this.bytesInUse += size;
    return buffer;
  }

  /** Gives a buffer back for reuse. Safe while queued GPU work still reads it: the queue runs in order. */
  release(buffer: GPUBuffer): void {
    if (!this.inUse.delete(buffer)) return; // not ours, or released twice
    this.bytesInUse -= buffer.size;
    const list = this.free.get(buffer.size);
    if (list) list.push(buffer);
    else this.free.set(buffer.size, [buffer]);
  }

  /** Destroys every free buffer (after a phase that needed much more memory than what follows). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.bytesAllocated -= b.size;
        this.buffersAllocated--;
        b.destroy();
      }
    }
    this.free.clear();
    this.generation++;
  }

  /** Whether the pool made this buffer (and so alone decides when it is destroyed). */
  owns(buffer: GPUBuffer): boolean {
    return this.owned.has(buffer);
  }

  stats(): PoolStats {
    return {
      bytesInUse: this.bytesInUse,
      bytesAllocated: this.bytesAllocated,
      buffersInUse: this.inUse.size,
      buffersAllocated: this.buffersAllocated,
    };
  }
}
