// Float64 CPU reference implementations used to test the GPU kernels.

export * from './batch-norm.js';
export * from './conv2d.js';
export * from './elementwise.js';
export * from './gradcheck.js';
export * from './matmul.js';
export * from './pool.js';
export * from './sgd.js';
export * from './softmax.js';
