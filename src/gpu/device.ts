// Opening a WebGPU device with every limit and optional feature the engine can use, and describing its
// adapter: the platform-neutral part. Where the adapter comes from is the platform's: Dawn's node bindings in
// Node (platform-node.ts, which also reads the WEBGPU_NN_* variables), `navigator.gpu` in a page
// (platform-browser.ts, which the browser build puts in platform-node.ts's place).
import { NoAdapterError } from '../errors.js';
import { requestPlatformAdapter, SETUP_HINT } from './platform-node.js';

/** Options for {@link openDevice}. In Node, unset fields fall back to the WEBGPU_NN_* variables (platform-node.ts); a page uses only `powerPreference`. */
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

/** Opens a device on the chosen adapter, with every limit and optional feature the engine can use. */
export async function openDevice(options: DeviceOptions = {}): Promise<OpenedDevice> {
  const adapter = await requestPlatformAdapter(options);

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
