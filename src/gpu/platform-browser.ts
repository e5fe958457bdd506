// Where the adapter comes from in a page: the browser's own WebGPU (`navigator.gpu`). The browser build
// (scripts/build-web.mjs) puts this file in the place of platform-node.ts; the rest of opening a device is device.ts.
import { NoAdapterError } from '../errors.js';
import type { DeviceOptions } from './device.js';

/** What to do when no adapter works: in NoAdapterErrors of device.ts too. */
export const SETUP_HINT =
  'WebGPU needs a browser that has it and a secure page (https:, or http://localhost): Chrome or Edge 113 or newer, ' +
  'Safari 26, Firefox 141 on Windows; on Linux, Chromium needs --enable-unsafe-webgpu (and often --enable-features=Vulkan).';

/** What to do when an adapter opens but computes wrong (self-test.ts). */
export const BROKEN_ADAPTER_HINT =
  "The browser's WebGPU or the GPU's driver may be broken: update the browser and the GPU's driver, or try another browser.";

/** The browser's adapter for these options (`backend` and `adapter` are Dawn's and mean nothing here); a NoAdapterError when none. */
export async function requestPlatformAdapter(options: DeviceOptions): Promise<GPUAdapter> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new NoAdapterError(`This browser has no WebGPU (navigator.gpu is undefined). ${SETUP_HINT}`);
  const power = options.powerPreference;
  const adapter = await gpu.requestAdapter(power ? { powerPreference: power } : undefined);
  if (!adapter) {
    throw new NoAdapterError(
      `This browser has WebGPU but offers no adapter (GPU blocklisted or disabled, or no software fallback). ${SETUP_HINT}`,
    );
  }
  return adapter;
}

/** The threads a software adapter computes on here: the page's hardware concurrency. */
export function softwareThreads(): number {
  return navigator.hardwareConcurrency || 1;
}
