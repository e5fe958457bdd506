// Device-side checks without readbacks: the asynchronous analogue of CUDA's device-side assert.
//
// A kernel that finds input it cannot use (a class target outside 0..C−1, a sample index past the data set)
// records the first such fault in the Gpu's fault word, four u32 in one small buffer:
//   [0] site: which op, a number the runtime handed out by name (0 = no fault)
//   [1..3]    what the site says about it (for a target: row, target, classes)
// and goes on with a harmless value. The runtime copies the word back in the same submit as every
// read() and sync() (one 16-byte copy, no extra submit, nothing on the training loop's hot path), and throws a
// DataError naming the op and the bad value there; the word is then cleared.
//
//   declareKernel({ ..., params: { ..., site: 'u32' }, buffers: { ..., ...FAULT_BUFFER },
//                   wgsl: `${FAULT_WGSL} ... if (bad) { raiseFault(p.site, row, u32(t), p.cols); }` })
//   launch(gpu, k, { params: { ..., site: gpu.faultSite('nllLoss', describeTarget) }, buffers: { ..., fault: gpu.faultBuffer } })
import type { BufferDecl } from './kernel.js';

/** Bytes of the fault word. */
export const FAULT_BYTES = 16;

/** The declaration of the fault word's binding, named `fault`. */
export const FAULT_BUFFER: { fault: BufferDecl } = { fault: { read_write: 'atomic<u32>' } };

/** WGSL: `raiseFault(site, a, b, c)` records a fault unless one is recorded already (the first one wins). */
export const FAULT_WGSL = /* wgsl */ `
fn raiseFault(site: u32, a: u32, b: u32, c: u32) {
  loop {
    if (atomicLoad(&fault[0]) != 0u) { return; }
    let r = atomicCompareExchangeWeak(&fault[0], 0u, site);
    if (r.exchanged) {
      atomicStore(&fault[1], a);
      atomicStore(&fault[2], b);
      atomicStore(&fault[3], c);
      return;
    }
  }
}`;

/** Turns a site's three words into the sentence of its DataError. */
export type FaultDescription = (a: number, b: number, c: number) => string;

/** A class target outside 0..classes−1: words (row, target as i32 bits, classes). */
export const targetFault =
  (op: string): FaultDescription =>
  (row, target, classes) =>
    `${op}: target ${target | 0} at row ${row} is not a class index in 0..${classes - 1} (${classes} classes); ` +
    'targets must be integers from 0 to classes − 1';

/** A sample index past the data: words (position in the index list, index, samples). */
export const indexFault =
  (op: string): FaultDescription =>
  (position, index, samples) =>
    `${op}: sample index ${index} at position ${position} of the index list is past the ${samples} samples of the data; ` +
    'indices must be below the number of samples';
