// Every kernel op with variants, by its registry name: what the tests walk to check that each variant is
// correct, what the benchmarks time, and what a tuner chooses among. A new op is added here.
import { BATCH_NORM_BACKWARD, BATCH_NORM_BACKWARD_EVAL, BATCH_NORM_EVAL, BATCH_NORM_STATS, BATCH_NORM_TRAIN } from './batch-norm/index.js';
import {
  CONV2D_BACKWARD_BIAS,
  CONV2D_BACKWARD_INPUT,
  CONV2D_BACKWARD_WEIGHT,
  CONV2D_FORWARD,
  CONV2D_POOL_RELU,
  CONV2D_POOL_RELU_BACKWARD_INPUT,
  CONV2D_POOL_RELU_BACKWARD_WEIGHT,
} from './conv2d/index.js';
import { DROPOUT } from './dropout.js';
import { ADD, AXPY, BROADCAST_SCALAR, COPY, FILL, MUL, SCALE, SIGMOID, SIGMOID_GRAD, SUB, TANH, TANH_GRAD } from './elementwise.js';
import { MATMUL } from './matmul/index.js';
import { BIAS_GRAD } from './matmul/linear.js';
import type { Op } from './op.js';
import { MAX_POOL2D, MAX_POOL2D_BACKWARD } from './pool.js';
import { REDUCE_SUM } from './reduce.js';
import { SGD_MOMENTUM_STEP, SGD_STEP } from './sgd.js';
import { CORRECT_COUNT, CROSS_ENTROPY, LOG_SOFTMAX, NLL_LOSS } from './softmax.js';

// biome-ignore lint/suspicious/noExplicitAny: a heterogeneous list; each entry keeps its own types where it is used
export type AnyOp = Op<any, any, string>;

export const OPS: readonly AnyOp[] = [
  MATMUL,
  BIAS_GRAD,
  CONV2D_FORWARD,
  CONV2D_BACKWARD_INPUT,
  CONV2D_BACKWARD_WEIGHT,
  CONV2D_BACKWARD_BIAS,
  CONV2D_POOL_RELU,
  CONV2D_POOL_RELU_BACKWARD_INPUT,
  CONV2D_POOL_RELU_BACKWARD_WEIGHT,
  MAX_POOL2D,
  MAX_POOL2D_BACKWARD,
  BATCH_NORM_STATS,
  BATCH_NORM_TRAIN,
  BATCH_NORM_BACKWARD,
  BATCH_NORM_EVAL,
  BATCH_NORM_BACKWARD_EVAL,
  LOG_SOFTMAX,
  NLL_LOSS,
  CROSS_ENTROPY,
  CORRECT_COUNT,
  REDUCE_SUM,
  DROPOUT,
  ADD,
  SUB,
  MUL,
  SCALE,
  AXPY,
  FILL,
  COPY,
  BROADCAST_SCALAR,
  TANH,
  TANH_GRAD,
  SIGMOID,
  SIGMOID_GRAD,
  SGD_STEP,
  SGD_MOMENTUM_STEP,
];
