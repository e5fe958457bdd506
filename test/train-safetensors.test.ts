import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError, FileFormatError } from '../src/errors.js';
import { decodeSafetensors, encodeSafetensors } from '../src/util/safetensors.js';
import { readSafetensors, writeSafetensors } from '../src/util/safetensors-file.js';

const tmp = mkdtempSync(join(tmpdir(), 'train-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Builds a file by hand: 8-byte LE length, header text, data. */
function build(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = Buffer.from(header, 'utf8');
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('safetensors', () => {
  const tensors = {
    'conv1.weight': { shape: [2, 1, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => i / 7 - 1) },
    'conv1.bias': { shape: [2], data: Float32Array.from([0.5, -Infinity]) },
    scalar: { shape: [], data: Float32Array.from([42]) },
    empty: { shape: [0, 4], data: new Float32Array(0) },
  };

  it('round-trips tensors and metadata through a file', () => {
    const path = join(tmp, 'model.safetensors');
    writeSafetensors(path, tensors, { epoch: '3', format: 'pt' });
    expect(readdirSync(tmp)).toEqual(['model.safetensors']);
    const back = readSafetensors(path);
    expect(back.metadata).toEqual({ epoch: '3', format: 'pt' });
    expect(Object.keys(back.tensors)).toEqual(Object.keys(tensors));
    for (const [k, t] of Object.entries(tensors)) {
      expect(back.tensors[k].shape).toEqual(t.shape);
      expect(back.tensors[k].data).toEqual(t.data);
    }
  });

  it('lays out the header exactly as the format specifies', () => {
    const bytes = encodeSafetensors({ a: { shape: [2], data: Float32Array.from([1, -2]) } }, { k: 'v' });
    const json = '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    expect(padded.length % 8).toBe(0);
    const view = new DataView(bytes.buffer);
    expect(view.getBigUint64(0, true)).toBe(BigInt(padded.length));
    expect(Buffer.from(bytes.subarray(8, 8 + padded.length)).toString('utf8')).toBe(padded);
    const data = bytes.subarray(8 + padded.length);
    expect(Array.from(data)).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]); // 1.0f, -2.0f little-endian
    expect(bytes.length).toBe(8 + padded.length + 8);
    // And a hand-built file with the same layout decodes.
    const hand = build(padded, data);
    expect(decodeSafetensors(hand, 'hand.safetensors').tensors.a.data).toEqual(Float32Array.from([1, -2]));
  });

  it.each([
    ['a short file', new Uint8Array(4), /at least an 8-byte header length/],
    [
      'a header longer than the file',
      (() => {
        const b = build('{}');
        b[0] = 200;
        return b;
      })(),
      /header length 200 exceeds/,
    ],
    ['invalid JSON', build('{"a": [1, '), /invalid JSON/],
    ['a non-object header', build('[1]'), /expected a JSON object/],
    [
      'an unsupported dtype',
      build('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4)),
      /tensor "w": dtype "F16" is not supported; expected "F32"/,
    ],
    [
      'out-of-range offsets',
      build('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(4)),
      /tensor "w": data_offsets \[0, 8\] out of range for 4 data bytes/,
    ],
    [
      'a size mismatch',
      build('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)),
      /tensor "w": shape \[3\] needs 12 bytes but data_offsets span 8/,
    ],
    [
      'a bad shape',
      build('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'),
      /tensor "w": shape must be an array of non-negative integers/,
    ],
    [
      'a gap in the data',
      build('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)),
      /tensor "w": data starts at byte 4, expected 0/,
    ],
    ['trailing data', build('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(8)), /4 trailing bytes/],
    ['non-string metadata', build('{"__metadata__":{"epoch":3}}'), /metadata "epoch" must be a string/],
  ])('rejects %s naming the file', (_, bytes, re) => {
    const err = errorOf(() => decodeSafetensors(bytes, 'ckpt.safetensors'));
    expect(err).toBeInstanceOf(FileFormatError);
    expect(err.message.startsWith('ckpt.safetensors: ')).toBe(true);
    expect(err.message).toMatch(re);
  });

  it('names the path of a missing or truncated checkpoint file', () => {
    expect(errorOf(() => readSafetensors(join(tmp, 'none.safetensors'))).message).toContain(join(tmp, 'none.safetensors'));
    const path = join(tmp, 'truncated.safetensors');
    const full = encodeSafetensors(tensors);
    writeFileSync(path, full.subarray(0, full.length - 10));
    const err = errorOf(() => readSafetensors(path));
    expect(err).toBeInstanceOf(FileFormatError);
    expect(err.message).toMatch(/truncated\.safetensors: tensor ".*": data_offsets .* out of range/);
    expect(readFileSync(path).length).toBe(full.length - 10);
  });

  it('rejects tensors whose data does not match their shape', () => {
    expect(() => encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } })).toThrowError(DataError);
    expect(() => encodeSafetensors({ __metadata__: { shape: [], data: new Float32Array(1) } })).toThrowError(/reserved/);
  });
});
