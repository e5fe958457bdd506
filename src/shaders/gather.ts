// Batch gathering for training on data that lives on the GPU.
//
// gather_images_v1: x[b, p] = (byte(images, idx[offset + b]·P + p) / 255 − mean) / std
//   images: u8 pixels packed four to a u32 (the whole data set, uploaded once); idx: u32 sample indices
//   (one shuffled permutation per epoch); x: float32 [B, P]. One invocation per output pixel.
//   Cost: 4 flops and ~5 bytes per pixel.
// gather_labels_v1: y[b] = labels[idx[offset + b]] (i32). One invocation per sample.
// gather_batch_v1: both in one dispatch (a training step's batch): the first B invocations also copy a label.
//   Where an image's pixels fill whole u32 words (P % 4 == 0, MNIST's 784), one invocation converts a word: four
//   pixels from one load, stored as a vec4 (x4); on llvmpipe every per-invocation load costs a loop over the lanes.
// Single kernels, no variants: no registry.
import { declareKernel, launch } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import type { Cost } from './op.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel } from './wgsl.js';

const WG = 256;

const imagesKernel = memoKernel((labels: boolean, words: boolean) =>
  declareKernel({
    name: `${labels ? 'gather_batch_v1' : 'gather_images_v1'}${words ? '_x4' : ''}`,
    params: { batch: 'u32', pixels: 'u32', offset: 'u32', mean: 'f32', invStd: 'f32' },
    buffers: {
      images: { read: 'u32' },
      idx: { read: 'u32' },
      x: words ? { read_write: 'vec4f' } : 'read_write',
      ...(labels ? { labels: { read: 'i32' }, y: { read_write: 'i32' } } : {}),
    },
    wgsl: words
      ? /* wgsl */ `
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};  // word i of the batch: pixels 4i .. 4i + 3
  ${labels ? 'if (i < p.batch) { y[i] = labels[idx[p.offset + i]]; }' : ''}
  let words = p.pixels / 4u;
  if (i >= p.batch * words) { return; }
  let b = i / words;
  let w = images[idx[p.offset + b] * words + (i - b * words)];
  let v = vec4f(vec4u(w, w >> 8u, w >> 16u, w >> 24u) & vec4u(0xffu));
  x[i] = (v / 255.0 - p.mean) * p.invStd;
}`
      : /* wgsl */ `
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  ${labels ? 'if (i < p.batch) { y[i] = labels[idx[p.offset + i]]; }' : ''}
  if (i >= p.batch * p.pixels) { return; }
  let b = i / p.pixels;
  let byteIndex = idx[p.offset + b] * p.pixels + (i - b * p.pixels);
  let v = (images[byteIndex >> 2u] >> ((byteIndex & 3u) * 8u)) & 0xffu;
  x[i] = (f32(v) / 255.0 - p.mean) * p.invStd;
}`,
  }),
);

const labelsKernel = memoKernel(() =>
  declareKernel({
    name: 'gather_labels_v1',
    params: { batch: 'u32', offset: 'u32' },
    buffers: { labels: { read: 'i32' }, idx: { read: 'u32' }, y: { read_write: 'i32' } },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  if (i < p.batch) { y[i] = labels[idx[p.offset + i]]; }
}`,
  }),
);

export interface GatherSizes {
  /** Samples to gather, starting at position `offset` of the index list. */
  batch: number;
  offset: number;
  /** Pixels per image (784 for MNIST). */
  pixels: number;
  /** Normalisation applied to pixel/255 (0 and 1 leave pixels in [0, 1]). */
  mean?: number;
  std?: number;
}

/** x[b, :] = normalised pixels of image idx[offset + b]; images are u8 packed in u32 words. */
export function gatherImages(gpu: Gpu, images: GPUBuffer, idx: GPUBuffer, x: GPUBuffer, s: GatherSizes): void {
  gather(gpu, { images, idx, x }, s);
}

/** gatherImages and gatherLabels in one dispatch. */
export function gatherBatch(
  gpu: Gpu,
  images: GPUBuffer,
  labels: GPUBuffer,
  idx: GPUBuffer,
  x: GPUBuffer,
  y: GPUBuffer,
  s: GatherSizes,
): void {
  gather(gpu, { images, idx, x, labels, y }, s);
}

function gather(gpu: Gpu, buffers: Record<string, GPUBuffer>, s: GatherSizes): void {
  const words = s.pixels % 4 === 0;
  launch(gpu, imagesKernel('labels' in buffers, words), {
    params: { batch: s.batch, pixels: s.pixels, offset: s.offset, mean: s.mean ?? 0, invStd: 1 / (s.std ?? 1) },
    buffers,
    workgroups: grid1d(Math.max((s.batch * s.pixels) / (words ? 4 : 1), s.batch), WG),
  });
}

/** y[b] = labels[idx[offset + b]]. */
export function gatherLabels(gpu: Gpu, labels: GPUBuffer, idx: GPUBuffer, y: GPUBuffer, s: { batch: number; offset: number }): void {
  launch(gpu, labelsKernel(), {
    params: { batch: s.batch, offset: s.offset },
    buffers: { labels, idx, y },
    workgroups: grid1d(s.batch, WG),
  });
}

export const gatherImagesCost = (s: GatherSizes): Cost => ({ flops: 4 * s.batch * s.pixels, bytes: 5 * s.batch * s.pixels });
