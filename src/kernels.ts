// webgpu-nn/kernels: the engine's kernels as plain functions on your own GPUDevice and GPUBuffers, without the
// tensor and autograd layers. Everything exported here is the public, documented surface of the kernel library;
// anything else in the package is internal and may change.
//
// Use: wrap your device once with `Gpu.fromDevice(device)`; each function records one or more dispatches into
// a shared compute pass; `gpu.flush()` submits them (`await gpu.read(...)` and `gpu.sync()` also wait).
// Buffers need STORAGE usage (and COPY_SRC/COPY_DST for reads and writes; with UNIFORM usage too, an input may be
// read as uniform windows where a tuned tile does that, e.g. conv2d.pool-relu's patch tile); sizes are in elements and must fit
// the buffers; a buffer may not be both input and output of one call unless the function says so.
// Each op chooses its kernel variant for the adapter; its registry (MATMUL, CONV2D_FORWARD, …) lists the
// variants, and a `variant` field in the sizes forces one (a VariantError where it cannot run).

// ---- errors a kernel call may throw --------------------------------------------------------------------------------
export { DataError, GpuError, LimitError, ShaderCompileError, ShapeError, VariantError } from './errors.js';
export type { BufferDecl, BufferNeeds, DeclaredKernel, KernelDecl, LaunchArgs, ParamType } from './gpu/kernel.js';
export { checkBuffers, declareKernel, launch } from './gpu/kernel.js';
export type { Binding, BindingKind, Dispatch, Kernel } from './gpu/runtime.js';
// ---- the runtime, and kernels of your own -------------------------------------------------------------------
export { Gpu } from './gpu/runtime.js';
export type {
  BatchNormBackwardEvalBuffers,
  BatchNormBackwardSizes,
  BatchNormSizes,
  BatchNormTrainSizes,
  BatchNormVariant,
  RunningStats,
} from './shaders/batch-norm/index.js';
// ---- batch normalisation -----------------------------------------------------------------------------------------
export {
  BATCH_NORM_BACKWARD,
  BATCH_NORM_BACKWARD_EVAL,
  BATCH_NORM_EVAL,
  BATCH_NORM_STATS,
  BATCH_NORM_TRAIN,
  batchNormBackward,
  batchNormBackwardCost,
  batchNormBackwardEval,
  batchNormBackwardEvalCost,
  batchNormForwardEval,
  batchNormForwardEvalCost,
  batchNormForwardTrain,
  batchNormForwardTrainCost,
  batchNormStats,
  updateRunningStats,
} from './shaders/batch-norm/index.js';
export type { Conv2dBackwardBiasSizes, Conv2dBackwardWeightSizes, Conv2dSizes, Conv2dVariant } from './shaders/conv2d/index.js';
// ---- convolution ----------------------------------------------------------------------------------------------
export {
  CONV2D_BACKWARD_BIAS,
  CONV2D_BACKWARD_INPUT,
  CONV2D_BACKWARD_WEIGHT,
  CONV2D_FORWARD,
  conv2d,
  conv2dBackwardBias,
  conv2dBackwardBiasCost,
  conv2dBackwardInput,
  conv2dBackwardInputCost,
  conv2dBackwardWeight,
  conv2dBackwardWeightCost,
  conv2dCost,
  conv2dOutputSize,
} from './shaders/conv2d/index.js';
export type { DropoutSizes } from './shaders/dropout.js';
export { DROPOUT, dropout, dropoutBackward, dropoutCost } from './shaders/dropout.js';
export type { ElementwiseSizes, ElementwiseVariant } from './shaders/elementwise.js';
// ---- elementwise, dropout, reductions ----------------------------------------------------------------------------
export {
  ADD,
  AXPY,
  add,
  axpy,
  axpyCost,
  BROADCAST_SCALAR,
  binaryCost,
  broadcastScalar,
  COPY,
  copy,
  copyCost,
  FILL,
  fill,
  fillCost,
  MUL,
  mul,
  relu,
  reluBackward,
  reluCost,
  SCALE,
  SIGMOID,
  SIGMOID_GRAD,
  SUB,
  scale,
  scaleCost,
  sigmoid,
  sigmoidBackward,
  sigmoidCost,
  sub,
  TANH,
  TANH_GRAD,
  tanh,
  tanhBackward,
  tanhCost,
} from './shaders/elementwise.js';
export type { GatherSizes } from './shaders/gather.js';
// ---- training on GPU-resident data ---------------------------------------------------------------------------------
export { gatherBatch, gatherImages, gatherImagesCost, gatherLabels } from './shaders/gather.js';
export type { MatmulSizes, MatmulVariant } from './shaders/matmul/index.js';
// ---- matrix multiply and the linear layer --------------------------------------------------------------------
export { MATMUL, matmul, matmulBias, matmulCost } from './shaders/matmul/index.js';
export type { BiasGradSizes, BiasGradVariant, BiasSizes, LinearBackwardSizes, LinearSizes } from './shaders/matmul/linear.js';
export {
  BIAS_GRAD,
  biasAdd,
  biasAddCost,
  biasGrad,
  biasGradCost,
  linearBackward,
  linearBackwardCost,
  linearCost,
  linearForward,
} from './shaders/matmul/linear.js';
export { accumulate } from './shaders/metrics.js';
export type { Cost, Op } from './shaders/op.js';
export type { PoolSizes, PoolVariant } from './shaders/pool.js';
// ---- pooling ----------------------------------------------------------------------------------------------------
export {
  MAX_POOL2D,
  MAX_POOL2D_BACKWARD,
  maxPool2d,
  maxPool2dBackward,
  maxPool2dBackwardCost,
  maxPool2dCost,
  poolOutputSize,
} from './shaders/pool.js';
export type { ReduceSizes, ReduceVariant } from './shaders/reduce.js';
export { mean, REDUCE_SUM, reduceCost, reduceSum, sum } from './shaders/reduce.js';
export { OPS } from './shaders/registry.js';
export type { SgdSizes, SgdTensor } from './shaders/sgd.js';
// ---- the optimizer step -------------------------------------------------------------------------------------------
export { SGD_MOMENTUM_STEP, SGD_STEP, sgdCost, sgdStep, sgdStepMany } from './shaders/sgd.js';
export type { CrossEntropyOutputs, LossGradSizes, LossSizes, SoftmaxSizes, SoftmaxVariant } from './shaders/softmax.js';
// ---- log-softmax and the classification losses ----------------------------------------------------------------
export {
  CORRECT_COUNT,
  CROSS_ENTROPY,
  correctCount,
  LOG_SOFTMAX,
  logSoftmax,
  logSoftmaxBackward,
  logSoftmaxCost,
  logSoftmaxNllLoss,
  logSoftmaxNllLossBackward,
  lossCost,
  NLL_LOSS,
  nllLoss,
  nllLossBackward,
} from './shaders/softmax.js';
export { grid1d } from './shaders/wgsl.js';
