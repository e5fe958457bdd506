// Seeded pseudo-random numbers for reproducible shuffles and splits.
// mulberry32 is tiny, fast and good enough for data ordering (not for cryptography);
// the same seed gives the same sequence on every platform.

/** Returns a generator of floats in [0, 1) determined entirely by `seed` (taken as a 32-bit integer). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle of `array` in place; returns the same array. */
export function shuffleInPlace<A extends { length: number; [i: number]: unknown }>(array: A, rng: () => number): A {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = array[i];
    array[i] = array[j];
    array[j] = t;
  }
  return array;
}
