// Float64 reference: one step of torch.optim.SGD.

export interface SgdOptions {
  lr: number;
  weightDecay?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
}

export interface SgdResult {
  param: Float64Array;
  velocity: Float64Array | null; // momentum buffer; null when momentum = 0
}

// g = grad + wd·θ; buf = g (first step) or m·buf + (1−d)·g; g = g + m·buf (nesterov) or buf; θ −= lr·g.
export function sgdStep(param: Float64Array, grad: Float64Array, opts: SgdOptions, velocity: Float64Array | null): SgdResult {
  const wd = opts.weightDecay ?? 0;
  const m = opts.momentum ?? 0;
  const d = opts.dampening ?? 0;
  const nesterov = opts.nesterov ?? false;
  const n = param.length;
  const newParam = new Float64Array(n);
  const buf = m !== 0 ? new Float64Array(n) : null;
  for (let i = 0; i < n; i++) {
    let g = grad[i] + wd * param[i];
    if (buf) {
      buf[i] = velocity ? m * velocity[i] + (1 - d) * g : g;
      g = nesterov ? g + m * buf[i] : buf[i];
    }
    newParam[i] = param[i] - opts.lr * g;
  }
  return { param: newParam, velocity: buf };
}
