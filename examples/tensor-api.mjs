// The tensor API: a linear classifier's loss and gradients, as in PyTorch.
import { F, init, SGD, tensor, tidy } from 'webgpu-nn';

const gpu = await init(); // opens the adapter (WEBGPU_NN_BACKEND / WEBGPU_NN_ADAPTER choose one)
const w = tensor([0.1, -0.2, 0.3, 0.4, 0.0, -0.1], [2, 3], { requiresGrad: true }); // [out, in]
const b = tensor([0, 0], [2], { requiresGrad: true });
const x = tensor([1, 2, 3, -1, 0, 1, 2, 2, 2, 0, -1, 0], [4, 3]);
const target = tensor([0, 1, 1, 0], [4], { dtype: 'int32' });
const opt = new SGD([w, b], { lr: 0.1, weightDecay: 1e-4 });

for (let step = 0; step < 3; step++) {
  // tidy() returns every temporary of the step to the buffer pool; the loss survives as the return value.
  const loss = tidy(() => {
    opt.zeroGrad();
    const loss = F.nllLoss(F.logSoftmax(F.linear(x, w, b), 1), target);
    loss.backward();
    opt.step();
    return loss;
  });
  console.log(`step ${step}: loss ${(await loss.item()).toFixed(4)}`);
  loss.dispose();
}
console.log(
  'dloss/dw',
  Array.from(await w.grad.toArray(), (v) => +v.toFixed(4)),
);
gpu.destroy(); // lets Node exit
