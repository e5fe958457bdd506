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
// A sample index at or past `count` gathers zeros (label 0) and is recorded in the Gpu's fault word (gpu/fault.ts):
// the next read() or sync() throws a DataError naming it.
// Single kernels, no variants: no registry.
import { FAULT_BUFFER, FAULT_WGSL, indexFault } from '../gpu/fault.js';
import { checkBuffers, declareKernel, launch } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import type { Cost } from './op.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel } from './wgsl.js';

const WG = 256;

// The sample at position b of the batch; one at or past the data raises the fault (the first raised is kept).
const SAMPLE_WGSL = /* wgsl */ `${FAULT_WGSL}
fn sampleAt(b: u32) -> u32 {
  let sample = idx[p.offset + b];
  if (sample >= p.count) { raiseFault(p.site, p.offset + b, sample, p.count); }
  return sample;
}`;

// y[b] = labels[sample b], or 0 past the data (kernels with labels and y).
const COPY_LABEL_WGSL = /* wgsl */ `
fn copyLabel(b: u32) {
  let sample = sampleAt(b);
  if (sample >= p.count) { y[b] = 0; } else { y[b] = labels[sample]; }
}`;

const imagesKernel = memoKernel((labels: boolean, words: boolean) =>
  declareKernel({
    name: `${labels ? 'gather_batch_v1' : 'gather_images_v1'}${words ? '_x4' : ''}`,
    params: { batch: 'u32', pixels: 'u32', offset: 'u32', mean: 'f32', invStd: 'f32', count: 'u32', site: 'u32' },
    buffers: {
      images: { read: 'u32' },
      idx: { read: 'u32' },
      x: words ? { read_write: 'vec4f' } : 'read_write',
      ...(labels ? { labels: { read: 'i32' }, y: { read_write: 'i32' } } : {}),
      ...FAULT_BUFFER,
    },
    wgsl: `${SAMPLE_WGSL}${labels ? COPY_LABEL_WGSL : ''}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  ${labels ? 'if (i < p.batch) { copyLabel(i); }' : ''}${
    words
      ? /* wgsl */ `
  // word i of the batch: pixels 4i .. 4i + 3
  let words = p.pixels / 4u;
  if (i >= p.batch * words) { return; }
  let b = i / words;
  let sample = sampleAt(b);
  if (sample >= p.count) { x[i] = vec4f(); return; }
  let w = images[sample * words + (i - b * words)];
  let v = vec4f(vec4u(w, w >> 8u, w >> 16u, w >> 24u) & vec4u(0xffu));
  x[i] = (v / 255.0 - p.mean) * p.invStd;`
      : /* wgsl */ `
  if (i >= p.batch * p.pixels) { return; }
  let b = i / p.pixels;
  let sample = sampleAt(b);
  if (sample >= p.count) { x[i] = 0.0; return; }
  let byteIndex = sample * p.pixels + (i - b * p.pixels);
  let v = (images[byteIndex >> 2u] >> ((byteIndex & 3u) * 8u)) & 0xffu;
  x[i] = (f32(v) / 255.0 - p.mean) * p.invStd;`
  }
}`,
  }),
);

const labelsKernel = memoKernel(() =>
  declareKernel({
    name: 'gather_labels_v1',
    params: { batch: 'u32', offset: 'u32', count: 'u32', site: 'u32' },
    buffers: { labels: { read: 'i32' }, idx: { read: 'u32' }, y: { read_write: 'i32' }, ...FAULT_BUFFER },
    wgsl: /* wgsl */ `${SAMPLE_WGSL}${COPY_LABEL_WGSL}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  if (i < p.batch) { copyLabel(i); }
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
  /** Samples the images (labels) buffer holds; an index at or past it is a fault. Default: what the buffer's size allows. */
  count?: number;
}

/** x[b, :] = normalised pixels of image idx[offset + b]; images are u8 packed in u32 words. */
export function gatherImages(gpu: Gpu, images: GPUBuffer, idx: GPUBuffer, x: GPUBuffer, s: GatherSizes): void {
  gather(gpu, 'gatherImages', { images, idx, x }, s);
}

/** gatherImages and gatherLabels in one dispatch (a training step's batch). */
export function gatherBatch(
  gpu: Gpu,
  images: GPUBuffer,
  labels: GPUBuffer,
  idx: GPUBuffer,
  x: GPUBuffer,
  y: GPUBuffer,
  s: GatherSizes,
): void {
  gather(gpu, 'gatherBatch', { images, idx, x, labels, y }, s);
}

function gather(
  gpu: Gpu,
  op: string,
  buffers: { images: GPUBuffer; idx: GPUBuffer; x: GPUBuffer; labels?: GPUBuffer; y?: GPUBuffer },
  s: GatherSizes,
): void {
  const { images, idx, x, labels, y } = buffers;
  checkBuffers(op, {
    idx: [idx, s.offset + s.batch],
    x: [x, s.batch * s.pixels],
    images: [images, Math.ceil(((s.count ?? 0) * s.pixels) / 4)],
    y: [y, s.batch],
    labels: [labels, s.count ?? 0],
  });
  const imageCount = Math.floor(images.size / s.pixels);
  const count = s.count ?? (labels ? Math.min(imageCount, Math.floor(labels.size / 4)) : imageCount);
  const words = s.pixels % 4 === 0;
  launch(gpu, imagesKernel(!!labels, words), {
    params: {
      batch: s.batch,
      pixels: s.pixels,
      offset: s.offset,
      mean: s.mean ?? 0,
      invStd: 1 / (s.std ?? 1),
      count,
      site: gpu.faultSite(op, indexFault(op)),
    },
    buffers: { ...(buffers as Record<string, GPUBuffer>), fault: gpu.faultBuffer },
    workgroups: grid1d(Math.max((s.batch * s.pixels) / (words ? 4 : 1), s.batch), WG),
  });
}

/** y[b] = labels[idx[offset + b]]. */
export function gatherLabels(
  gpu: Gpu,
  labels: GPUBuffer,
  idx: GPUBuffer,
  y: GPUBuffer,
  s: { batch: number; offset: number; count?: number },
): void {
  checkBuffers('gatherLabels', { idx: [idx, s.offset + s.batch], y: [y, s.batch], labels: [labels, s.count ?? 0] });
  const site = gpu.faultSite('gatherLabels', indexFault('gatherLabels'));
  launch(gpu, labelsKernel(), {
    params: { batch: s.batch, offset: s.offset, count: s.count ?? Math.floor(labels.size / 4), site },
    buffers: { labels, idx, y, fault: gpu.faultBuffer },
    workgroups: grid1d(s.batch, WG),
  });
}

export const gatherImagesCost = (s: GatherSizes): Cost => ({ flops: 4 * s.batch * s.pixels, bytes: 5 * s.batch * s.pixels });
