// Where the adapter comes from in Node: Dawn's node bindings (npm `webgpu`). The platform-neutral rest of
// opening a device is device.ts; in a page, platform-browser.ts takes this file's place (the browser build,
// scripts/build-web.mjs, swaps it in), so Dawn never reaches a browser bundle.
//
// Choose the adapter with options or environment variables:
//   WEBGPU_NN_BACKEND  vulkan | metal | d3d12 | d3d11 | opengl | opengles | null   (Dawn's `backend` flag)
//   WEBGPU_NN_ADAPTER  a case-insensitive substring of the adapter's name            (Dawn's `adapter` flag)
//   WEBGPU_NN_POWER    low-power | high-performance
import { create, globals } from 'webgpu';
import { NoAdapterError } from '../errors.js';
import type { DeviceOptions } from './device.js';

let globalsInstalled = false;
const liveInstances: GPU[] = [];

const SETUP_HINT =
  "Run `bash scripts/setup.sh` (as root on Debian 12 it installs Mesa's software Vulkan driver), " +
  'or install your GPU\'s Vulkan driver; see the README section "Machines".';

/** The adapter Dawn finds for these options (or the WEBGPU_NN_* variables); a NoAdapterError when none. */
export async function requestPlatformAdapter(options: DeviceOptions): Promise<GPUAdapter> {
  if (!globalsInstalled) {
    Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ... as in a browser
    globalsInstalled = true;
  }
  const backend = options.backend ?? process.env.WEBGPU_NN_BACKEND;
  const adapterName = options.adapter ?? process.env.WEBGPU_NN_ADAPTER;
  const power = options.powerPreference ?? (process.env.WEBGPU_NN_POWER as GPUPowerPreference | undefined);
  const flags: string[] = [];
  if (backend) flags.push(`backend=${backend}`);
  if (adapterName) flags.push(`adapter=${adapterName}`);

  const gpu = create(flags);
  // The device must not outlive Dawn's instance: if `gpu` were collected, the next shader compile would
  // touch freed memory (crashes, hangs). Keep every instance we made for the life of the process.
  liveInstances.push(gpu);
  const adapter = await gpu.requestAdapter(power ? { powerPreference: power } : undefined);
  if (!adapter) {
    const wanted = [backend && `backend "${backend}"`, adapterName && `adapter "${adapterName}"`].filter(Boolean).join(', ');
    throw new NoAdapterError(`No WebGPU adapter found${wanted ? ` for ${wanted}` : ''}. ${SETUP_HINT}`);
  }
  return adapter;
}
