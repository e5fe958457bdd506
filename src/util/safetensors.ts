// The safetensors checkpoint format: an 8-byte little-endian header length, a JSON header mapping
// tensor names to dtype/shape/byte offsets (plus optional string metadata), padded with spaces to
// a multiple of 8, then the raw little-endian tensor bytes. Only F32 tensors are used here.
// Bytes in, bytes out, so a page can read a checkpoint too; safetensors-file.ts reads and writes files (Node).
import { DataError, FileFormatError } from '../errors.js';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}
export type TensorMap = Record<string, NamedTensor>;

const prod = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Serialises `tensors` (in key order) and optional string `metadata` into safetensors bytes. */
export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new DataError('safetensors: "__metadata__" is reserved and cannot be a tensor name');
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0) || t.data.length !== prod(t.shape)) {
      throw new DataError(`safetensors: tensor "${name}" has shape [${t.shape.join(', ')}] but ${t.data.length} values`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  // Float32Array bytes are little-endian on every platform Node and the browsers support, as the format requires.
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Parses safetensors bytes, validating the header and every tensor; `file` is named in every error. */
export function decodeSafetensors(bytes: Uint8Array, file: string): { tensors: TensorMap; metadata: Record<string, string> } {
  const fail = (msg: string): never => {
    throw new FileFormatError(`${file}: ${msg}`);
  };
  if (bytes.length < 8) fail(`not a safetensors file: ${bytes.length} bytes, expected at least an 8-byte header length`);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) {
    fail(`not a safetensors file or truncated: header length ${headerLen} exceeds the ${bytes.length - 8} bytes after it`);
  }
  const dataStart = 8 + Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, dataStart)));
  } catch (err) {
    fail(`corrupt safetensors header (invalid JSON): ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('corrupt safetensors header: expected a JSON object');
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorMap = {};
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail('"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`metadata "${k}" must be a string, found ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof e !== 'object' || e === null) fail(`tensor "${name}": expected an object with dtype, shape and data_offsets`);
    if (e!.dtype !== 'F32') fail(`tensor "${name}": dtype ${JSON.stringify(e!.dtype)} is not supported; expected "F32"`);
    const shape = e!.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape must be an array of non-negative integers, found ${JSON.stringify(shape)}`);
    }
    const offs = e!.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o))) {
      fail(`tensor "${name}": data_offsets must be [begin, end], found ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin < 0 || end < begin || end > dataLen) {
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] out of range for ${dataLen} data bytes (file truncated?)`);
    }
    const n = prod(shape as number[]);
    if (end - begin !== n * 4) {
      fail(`tensor "${name}": shape [${(shape as number[]).join(', ')}] needs ${n * 4} bytes but data_offsets span ${end - begin}`);
    }
    ranges.push([begin, end, name]);
    // Copy into a fresh, 4-byte-aligned buffer: the data region may be unaligned, and Buffer.slice
    // would return a view of the whole file rather than a copy.
    const data = new Float32Array(new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end)).buffer);
    tensors[name] = { shape: shape as number[], data };
  }
  // The format requires the tensors to tile the data region exactly: gaps or overlaps mean corruption.
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let pos = 0;
  for (const [begin, end, name] of ranges) {
    if (begin !== pos) fail(`tensor "${name}": data starts at byte ${begin}, expected ${pos} (overlapping or missing data)`);
    pos = end;
  }
  if (pos !== dataLen) fail(`${dataLen - pos} trailing bytes after the last tensor`);
  return { tensors, metadata };
}
