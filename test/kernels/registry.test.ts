// The variant registry's promises, for every op: names are unique, an unknown variant is an error naming the op
// and the variant, a variant the adapter cannot run is refused when forced and never chosen by default.
import { describe, expect, it } from 'vitest';
import { VariantError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/runtime.js';
import { MATMUL } from '../../src/shaders/matmul/index.js';
import { OPS } from '../../src/shaders/registry.js';

/** Enough of a Gpu for variant selection: an adapter kind and a device with or without fixed-size subgroups. */
function fakeGpu(kind: 'software' | 'gpu', subgroups: boolean): Gpu {
  const device = {
    features: new Set(subgroups ? ['subgroups'] : []),
    adapterInfo: subgroups ? { subgroupMinSize: 8, subgroupMaxSize: 8 } : {},
  };
  const adapter = { vendor: 'test', architecture: kind, description: `fake ${kind}`, kind, featureLevel: 'core', features: [], limits: {} };
  return { isSoftware: kind === 'software', device, adapter } as unknown as Gpu;
}

describe('variant registry', () => {
  it('every op has a unique name and at least one variant, the first needing no capability', () => {
    const names = OPS.map((op) => op.name);
    expect(new Set(names).size).toBe(names.length);
    for (const op of OPS) {
      expect(op.names.length, op.name).toBeGreaterThan(0);
      expect(op.variant(op.names[0]).requires ?? [], `${op.name} ${op.names[0]}`).toEqual([]);
    }
  });

  it('an unknown variant is a VariantError naming the op, the variant and the real ones', () => {
    for (const op of OPS) {
      const message = `${op.name} has no variant "v9"; its variants are ${op.names.join(', ')}`;
      expect(() => op.resolve(fakeGpu('software', true), {}, 'v9')).toThrow(VariantError);
      expect(() => op.resolve(fakeGpu('software', true), {}, 'v9')).toThrow(message);
    }
  });

  it('a variant needing subgroups is refused when forced without them, and never chosen by default', () => {
    const sizes = { M: 64, N: 64, K: 64 };
    const plain = fakeGpu('software', false);
    expect(() => MATMUL.resolve(plain, sizes, 'v4')).toThrow(
      /matmul variant v4 cannot run here: it needs the "subgroups" feature with a fixed subgroup size/,
    );
    expect(MATMUL.resolve(plain, sizes)).toBe('v2');
    expect(MATMUL.resolve(fakeGpu('software', true), sizes)).toBe('v4');
    expect(MATMUL.resolve(fakeGpu('gpu', true), sizes)).toBe('v3');
    expect(MATMUL.candidates(plain, sizes)).toEqual(['v1', 'v2', 'v3']);
  });
});
