// Which variants of an op a test runs: every variant the registry has that this adapter can run for the
// sizes. A variant it cannot run is not skipped silently: forcing it must fail with a VariantError that names
// the op and the variant (the registry's promise that nothing falls back to another kernel unnoticed).
import { expect } from 'vitest';
import { VariantError } from '../../src/errors.js';
import type { Gpu } from '../../src/gpu/runtime.js';
import type { Choice, Op } from '../../src/shaders/op.js';

export function runnableVariants<S, B, N extends string>(gpu: Gpu, op: Op<S, B, N>, sizes: S): N[] {
  const runnable: N[] = [];
  for (const name of op.names) {
    if (op.unavailable(gpu, name, sizes) === null) {
      runnable.push(name);
      continue;
    }
    expect(() => op.resolve(gpu, sizes, name)).toThrow(VariantError);
    expect(() => op.resolve(gpu, sizes, name)).toThrow(new RegExp(`${op.name} variant ${name} cannot run here`));
  }
  expect(runnable.length, `${op.name}: some variant must run every size`).toBeGreaterThan(0);
  return runnable;
}

/**
 * Every (variant, configuration) a tuner may choose for these sizes here (`op.choices`): the variants of
 * runnableVariants, each with its tile configurations. Tests run them all against the references.
 */
export function runnableChoices<S, B, N extends string>(gpu: Gpu, op: Op<S, B, N>, sizes: S): Choice<N>[] {
  const variants = runnableVariants(gpu, op, sizes);
  const choices = op.choices(gpu, sizes);
  expect([...new Set(choices.map((c) => c.variant))]).toEqual(variants);
  return choices;
}
