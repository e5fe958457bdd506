import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each file opens its own Dawn device on llvmpipe, which already uses every core: two files at a time.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    // Kernel tuning off (the heuristics' choices) so results do not depend on a machine's tuning cache;
    // test/tune/ turns it on where it tests it.
    env: { WEBGPU_NN_TUNE: '0' },
    hookTimeout: 60_000,
  },
});
