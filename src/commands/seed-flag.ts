// --seed, the flag of every command that draws random numbers (train and the lesson's experiments).
import type { FlagSpec } from '../util/flags.js';

/**
 * --seed N with 0 ≤ N ≤ 2^32 − 1: the seeds the generator (mulberry32, src/util/random.ts) tells apart; a
 * larger one would silently give the run of the seed modulo 2^32.
 */
export function seedFlag(defaultSeed: number, help: string) {
  return { type: 'int', default: defaultSeed, min: 0, max: 0xffffffff, help } as const satisfies FlagSpec;
}
