// Where the adapter comes from in Node: Dawn's node bindings (npm `webgpu`). The platform-neutral rest of
// opening a device is device.ts; in a page, platform-browser.ts takes this file's place (the browser build,
// scripts/build-web.mjs, swaps it in), so Dawn never reaches a browser bundle.
//
// Choose the adapter with options or environment variables:
//   WEBGPU_NN_BACKEND  vulkan | metal | d3d12 | d3d11 | opengl | opengles   (Dawn's `backend` flag; its `null`
//                      backend runs nothing, and Gpu.create refuses it)
//   WEBGPU_NN_ADAPTER  a case-insensitive substring of the adapter's name            (Dawn's `adapter` flag)
//   WEBGPU_NN_POWER    low-power | high-performance
// A value Dawn does not know, or one that matches no adapter, is a NoAdapterError listing the adapters there are.
import { availableParallelism } from 'node:os';
import { create, globals } from 'webgpu';
import { NoAdapterError } from '../errors.js';
import { throttleDawnPolling } from './dawn-polling.js';
import type { DeviceOptions } from './device.js';

let globalsInstalled = false;
const liveInstances: GPU[] = [];

/** What to do when no adapter works: in NoAdapterErrors of device.ts too. */
export const SETUP_HINT =
  "Run `bash scripts/setup.sh` (as root on Debian 12 it installs Mesa's software Vulkan driver), " +
  'or install your GPU\'s Vulkan driver; see the README section "Machines".';

/** What to do when an adapter opens but computes wrong (self-test.ts). */
export const BROKEN_ADAPTER_HINT =
  "It may be Dawn's null backend (WEBGPU_NN_BACKEND=null), which runs nothing, or a broken driver. Choose another adapter " +
  'with WEBGPU_NN_BACKEND / WEBGPU_NN_ADAPTER, or run `bash scripts/setup.sh` to install a working one.';

/** Dawn's backends (its `backend` flag). */
const BACKENDS = ['vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'webgpu', 'null'] as const;
const POWER_PREFERENCES = ['low-power', 'high-performance'] as const;

interface ListedAdapter {
  backend: string;
  name: string;
}

/** The adapters in Dawn's "no suitable backends found / Available adapters: * backend: 'vulkan', name: '...'" error. */
function listedAdapters(message: string): ListedAdapter[] {
  return [...message.matchAll(/backend: '([^']*)', name: '([^']*)'/g)].map((m) => ({ backend: m[1], name: m[2] }));
}

/** Every adapter Dawn sees on this machine, whatever the backend. */
async function dawnAdapters(): Promise<ListedAdapter[]> {
  try {
    // An adapter name no adapter has makes Dawn throw with its list of adapters: the only way to ask for it.
    const probe = create(['adapter=\u0001webgpu-nn: list the adapters']);
    liveInstances.push(probe);
    await probe.requestAdapter();
  } catch (e) {
    return listedAdapters((e as Error).message);
  }
  return [];
}

/** "Adapters Dawn sees here: vulkan "llvmpipe (...)" (choose with ...)", for NoAdapterErrors. */
async function adapterList(): Promise<string> {
  const adapters = await dawnAdapters();
  return adapters.length
    ? `Adapters Dawn sees here: ${adapters.map((a) => `${a.backend} "${a.name}"`).join('; ')} (choose with WEBGPU_NN_BACKEND and WEBGPU_NN_ADAPTER, or unset them).`
    : 'Dawn sees no adapter on this machine.';
}

/** The setting `name` from options or the environment, with where it came from for messages. */
function setting(option: string | undefined, env: string): { value: string | undefined; from: string } {
  if (option !== undefined) return { value: option, from: `the ${env.replace('WEBGPU_NN_', '').toLowerCase()} option` };
  const v = process.env[env];
  return { value: v === '' ? undefined : v, from: env };
}

/** Dawn's adapter for these flags, or the error Dawn threw (it throws when an adapter name matches nothing). */
async function dawnAdapter(flags: string[], power: GPUPowerPreference | undefined): Promise<GPUAdapter | null | Error> {
  try {
    const gpu = create(flags);
    // The device must not outlive Dawn's instance: if `gpu` were collected, the next shader compile would
    // touch freed memory (crashes, hangs). Keep every instance we made for the life of the process.
    liveInstances.push(gpu);
    return await gpu.requestAdapter(power ? { powerPreference: power } : undefined);
  } catch (e) {
    return e as Error;
  }
}

/** The adapter Dawn finds for these options (or the WEBGPU_NN_* variables); a NoAdapterError when none. */
export async function requestPlatformAdapter(options: DeviceOptions): Promise<GPUAdapter> {
  if (!globalsInstalled) {
    Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ... as in a browser
    throttleDawnPolling(); // Dawn's waits must not keep a CPU core busy (dawn-polling.ts)
    globalsInstalled = true;
  }
  const backend = setting(options.backend, 'WEBGPU_NN_BACKEND');
  const adapterName = setting(options.adapter, 'WEBGPU_NN_ADAPTER');
  const power = setting(options.powerPreference, 'WEBGPU_NN_POWER');
  if (backend.value !== undefined && !(BACKENDS as readonly string[]).includes(backend.value.toLowerCase())) {
    throw new NoAdapterError(
      `${backend.from} is "${backend.value}", which is not a backend Dawn knows (${BACKENDS.filter((b) => b !== 'null').join(', ')}). ${await adapterList()}`,
    );
  }
  if (power.value !== undefined && !(POWER_PREFERENCES as readonly string[]).includes(power.value)) {
    throw new NoAdapterError(`${power.from} is "${power.value}"; expected ${POWER_PREFERENCES.join(' or ')}, or leave it unset.`);
  }
  const flags = (name: string | undefined) => [
    ...(backend.value ? [`backend=${backend.value.toLowerCase()}`] : []),
    ...(name ? [`adapter=${name}`] : []),
  ];
  const powerPreference = power.value as GPUPowerPreference | undefined;
  const wanted = [backend.value && `backend "${backend.value}"`, adapterName.value && `adapter "${adapterName.value}"`]
    .filter(Boolean)
    .join(', ');

  let adapter = await dawnAdapter(flags(adapterName.value), powerPreference);
  if (adapter instanceof Error && adapterName.value) {
    // Dawn matches the name case-sensitively; ours is case-insensitive. Dawn's error lists the adapters these
    // flags allow: ask again with the name as one of them spells it.
    const pattern = new RegExp(adapterName.value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
    const spelled = listedAdapters(adapter.message)
      .map((a) => pattern.exec(a.name)?.[0])
      .find((m) => m !== undefined);
    if (spelled === undefined) {
      throw new NoAdapterError(
        `No WebGPU adapter found for ${wanted} (no adapter${backend.value ? ' of that backend' : ''} has it in its name, ` +
          `in any case). ${await adapterList()}`,
      );
    }
    adapter = await dawnAdapter(flags(spelled), powerPreference);
  }
  if (adapter instanceof Error) {
    const reason = adapter.message.split('\n')[0];
    throw new NoAdapterError(`No WebGPU adapter found${wanted ? ` for ${wanted}` : ''} (${reason}). ${await adapterList()}`);
  }
  if (!adapter) {
    throw new NoAdapterError(`No WebGPU adapter found${wanted ? ` for ${wanted}` : ''}. ${SETUP_HINT} ${await adapterList()}`);
  }
  return adapter;
}

/** The threads a software adapter computes on here: llvmpipe's LP_NUM_THREADS where it is set, else the CPUs. */
export function softwareThreads(): number {
  const n = Number.parseInt(process.env.LP_NUM_THREADS ?? '', 10);
  return Number.isInteger(n) && n >= 0 ? Math.max(1, n) : availableParallelism();
}
