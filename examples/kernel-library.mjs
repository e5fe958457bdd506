// The kernel library on a device and buffers of your own: no tensors, no autograd.
import { create, globals } from 'webgpu';
import { Gpu, matmul, relu } from 'webgpu-nn/kernels';

Object.assign(globalThis, globals);
const navigatorGpu = create([]); // keep Dawn's instance referenced for as long as its device is in use
const adapter = await navigatorGpu.requestAdapter();
const device = await adapter.requestDevice();

const [M, K, N] = [2, 3, 2];
const buffer = (data) => {
  const b = device.createBuffer({
    size: 16 * Math.ceil(data.length / 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(b, 0, new Float32Array(data));
  return b;
};
const a = buffer([1, 2, 3, 4, 5, 6]); // [M, K]
const b = buffer([1, -1, 0, 1, -1, 0]); // [K, N]
const c = buffer(new Array(M * N).fill(0));
const d = buffer(new Array(M * N).fill(0));

const gpu = Gpu.fromDevice(device, adapter.info); // wraps your device; records into one compute pass
matmul(gpu, a, b, c, { M, N, K }); // c = a · b
relu(gpu, c, d, M * N); // d = max(c, 0)
gpu.flush(); // submits; from here the queue is yours again

const staging = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const encoder = device.createCommandEncoder();
encoder.copyBufferToBuffer(d, 0, staging, 0, 16);
device.queue.submit([encoder.finish()]);
await staging.mapAsync(GPUMapMode.READ);
console.log('relu(a · b) =', Array.from(new Float32Array(staging.getMappedRange())));
device.destroy();
