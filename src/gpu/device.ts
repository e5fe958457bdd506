// Finding a WebGPU adapter and opening a device through Dawn's node bindings (npm `webgpu`).
//
// Choose the adapter with options or environment variables:
//   WEBGPU_NN_BACKEND  vulkan | metal | d3d12 | d3d11 | opengl | opengles | null   (Dawn's `backend` flag)
//   WEBGPU_NN_ADAPTER  a case-insensitive substring of the adapter's name            (Dawn's `adapter` flag)
//   WEBGPU_NN_POWER    low-power | high-performance
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

/** Opens a device on the chosen adapter, with every limit and optional feature the engine can use. */
export async function openDevice(options: DeviceOptions = {}): Promise<OpenedDevice> {
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

  const wantFeatures: GPUFeatureName[] = ['timestamp-query', 'shader-f16', 'subgroups' as GPUFeatureName];
  const requiredFeatures = wantFeatures.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
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
