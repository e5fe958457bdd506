import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// The kernel tests run a second time on another software adapter, SwiftShader's Vulkan driver (from Debian's
// chromium packages, which scripts/setup.sh installs), so that no kernel depends on one driver's subgroup size,
// workgroup limits or float quirks. Its ICD file; WEBGPU_NN_SWIFTSHADER_ICD names another.
const SWIFTSHADER_ICD =
  process.env.WEBGPU_NN_SWIFTSHADER_ICD ??
  ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'].find((f) => existsSync(f)) ??
  '/usr/lib/chromium/vk_swiftshader_icd.json';

export default defineConfig({
  test: {
    // Each file opens its own Dawn device on a software adapter, which already uses every core: two files at a time.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    // Kernel tuning off (the heuristics' choices) so results do not depend on a machine's tuning cache;
    // test/tune/ turns it on where it tests it.
    env: { WEBGPU_NN_TUNE: '0' },
    hookTimeout: 60_000,
    projects: [
      // Everything, on the adapter Dawn picks (llvmpipe on a machine without a GPU); the browser tests drive Chromium.
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'], exclude: ['test/swiftshader/**'] } },
      {
        extends: true,
        test: {
          name: 'swiftshader',
          include: ['test/kernels/**/*.test.ts', 'test/swiftshader/**/*.test.ts'],
          // Only SwiftShader's driver is visible, and Dawn must pick it by name (a NoAdapterError otherwise).
          env: { VK_ICD_FILENAMES: SWIFTSHADER_ICD, WEBGPU_NN_ADAPTER: 'SwiftShader' },
        },
      },
    ],
  },
});
