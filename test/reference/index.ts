// Float64 CPU reference implementations used to test the GPU kernels.
export * from './matmul.js';
export * from './conv2d.js';
export * from './pool.js';
export * from './batch-norm.js';
export * from './softmax.js';
export * from './elementwise.js';
export * from './sgd.js';
export * from './gradcheck.js';
