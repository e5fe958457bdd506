// Finding a WebGPU adapter and opening a device through Dawn's node bindings (npm `webgpu`).
//
// Choose the adapter with options or environment variables:
//   WEBGPU_NN_BACKEND  vulkan | metal | d3d12 | d3d11 | opengl | opengles   (Dawn's `backend` flag; its `null`
//                      backend runs nothing, and Gpu.create refuses it)
//   WEBGPU_NN_ADAPTER  a case-insensitive substring of the adapter's name            (Dawn's `adapter` flag)
//   WEBGPU_NN_POWER    low-power | high-performance
// A value Dawn does not know, or one that matches no adapter, is a NoAdapterError listing the adapters there are.
import { create, globals } from 'webgpu';
import { NoAdapterError } from '../errors.js';

let globalsInstalled = false;
const liveInstances: GPU[] = [];

/** Options for {@link openDevice}. Unset fields fall back to the environment variables above. */
export interface DeviceOptions {
  backend?: string;
  adapter?: string;
  powerPreference?: GPUPowerPreference;
}

/** What a log or benchmark needs to know about the adapter a run used. */
export interface AdapterDescription {
  vendor: string;
  architecture: string;
  description: string;
  /** 'software' for CPU rasterizers (llvmpipe, SwiftShader, WARP), else 'gpu'. Kernels pick variants by it. */
  kind: 'software' | 'gpu';
  featureLevel: string;
  features: string[];
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupSizeX: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
}

export interface OpenedDevice {
  device: GPUDevice;
  adapter: AdapterDescription;
}

const SETUP_HINT =
  "Run `bash scripts/setup.sh` (as root on Debian 12 it installs Mesa's software Vulkan driver), " +
  'or install your GPU\'s Vulkan driver; see the README section "Machines".';

/** Dawn's backends (its `backend` flag). */
const BACKENDS = ['vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'webgpu', 'null'] as const;
const POWER_PREFERENCES = ['low-power', 'high-performance'] as const;

/** "the adapter Dawn sees here: vulkan llvmpipe (...)" from the list Dawn gives when a name matches nothing. */
async function adapterList(): Promise<string> {
  let listed = '';
  try {
    // An adapter name no adapter has makes Dawn throw with its list of adapters: the only way to ask for it.
    const probe = create(['adapter=\u0001webgpu-nn: list the adapters']);
    liveInstances.push(probe);
    await probe.requestAdapter();
  } catch (e) {
    listed = (e as Error).message;
  }
  const adapters = [...listed.matchAll(/backend: '([^']*)', name: '([^']*)'/g)].map((m) => `${m[1]} "${m[2]}"`);
  return adapters.length
    ? `Adapters Dawn sees here: ${adapters.join('; ')} (choose with WEBGPU_NN_BACKEND and WEBGPU_NN_ADAPTER, or unset them).`
    : 'Dawn sees no adapter on this machine.';
}

/** The setting `name` from options or the environment, with where it came from for messages. */
function setting(option: string | undefined, env: string): { value: string | undefined; from: string } {
  if (option !== undefined) return { value: option, from: `the ${env.replace('WEBGPU_NN_', '').toLowerCase()} option` };
  const v = process.env[env];
  return { value: v === '' ? undefined : v, from: env };
}

/** Opens a device on the chosen adapter, with every limit and optional feature the engine can use. */
export async function openDevice(options: DeviceOptions = {}): Promise<OpenedDevice> {
  if (!globalsInstalled) {
    Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ... as in a browser
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
  const flags: string[] = [];
  if (backend.value) flags.push(`backend=${backend.value.toLowerCase()}`);
  if (adapterName.value) flags.push(`adapter=${adapterName.value}`);
  const wanted = [backend.value && `backend "${backend.value}"`, adapterName.value && `adapter "${adapterName.value}"`]
    .filter(Boolean)
    .join(', ');

  let adapter: GPUAdapter | null;
  try {
    const gpu = create(flags);
    // The device must not outlive Dawn's instance: if `gpu` were collected, the next shader compile would
    // touch freed memory (crashes, hangs). Keep every instance we made for the life of the process.
    liveInstances.push(gpu);
    adapter = await gpu.requestAdapter(power.value ? { powerPreference: power.value as GPUPowerPreference } : undefined);
  } catch (e) {
    // Dawn throws when an adapter name matches nothing ("no suitable backends found / Available adapters: ...").
    const reason = (e as Error).message.split('\n')[0];
    throw new NoAdapterError(`No WebGPU adapter found${wanted ? ` for ${wanted}` : ''} (${reason}). ${await adapterList()}`);
  }
  if (!adapter) {
    throw new NoAdapterError(`No WebGPU adapter found${wanted ? ` for ${wanted}` : ''}. ${SETUP_HINT} ${await adapterList()}`);
  }

  const wantFeatures: GPUFeatureName[] = ['timestamp-query', 'shader-f16', 'subgroups' as GPUFeatureName];
  const requiredFeatures = wantFeatures.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter
    .requestDevice({
      label: 'webgpu-nn',
      requiredFeatures,
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      },
    })
    .catch((e: Error) => {
      throw new NoAdapterError(
        `the adapter ${adapter.info.description || adapter.info.vendor} would not open a device: ${e.message}. ${SETUP_HINT}`,
      );
    });
  return { device, adapter: describeAdapter(adapter.info, adapter, device) };
}

/** Describes an adapter (or, for a device handed to us by another program, the device alone). */
export function describeAdapter(info: GPUAdapterInfo | undefined, adapter: GPUAdapter | undefined, device: GPUDevice): AdapterDescription {
  const i = info ?? (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const vendor = i?.vendor ?? '';
  const architecture = i?.architecture ?? '';
  const description = i?.description ?? '';
  const text = `${vendor} ${architecture} ${description}`.toLowerCase();
  const software = /software|llvmpipe|lavapipe|swiftshader|warp|cpu/.test(text);
  const lim = device.limits;
  return {
    vendor,
    architecture,
    description,
    kind: software ? 'software' : 'gpu',
    featureLevel: (adapter as (GPUAdapter & { featureLevel?: string }) | undefined)?.featureLevel ?? 'core',
    features: [...device.features].sort(),
    limits: {
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
      maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
    },
  };
}

/** One line for logs: "mesa software (llvmpipe: Mesa 25.0.7 ...), core, software adapter". */
export function adapterSummary(a: AdapterDescription): string {
  return `${a.vendor || 'unknown vendor'} ${a.architecture} (${a.description || 'no description'}), ${a.featureLevel}, ${a.kind} adapter`.replace(
    /\s+/g,
    ' ',
  );
}
