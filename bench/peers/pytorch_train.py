#!/usr/bin/env python3
"""PyTorch peer of `npm run bench:train`: trains the seed's CNN on the CPU and prints ONE JSON line.

    python3 bench/peers/pytorch_train.py DATA.u8 [--epochs 3] [--batch-size 64] [--warmup-samples 640]
                                          [--threads 2] [--seed 42]
    python3 bench/peers/pytorch_train.py --synthetic 2000 ...   (no data file: class-dependent noise images)

DATA.u8 is what the driver (bench/train.ts) writes so that every system trains on the same bytes:
N*784 uint8 pixels (N images of 28x28, row-major) followed by N uint8 labels; N = file size / 785.
Pixels are scaled to [0, 1] as the seed's transforms.ToTensor() does (no mean/std normalisation).

The network, loss and optimiser are the seed's (SimpleCNN with nn.BatchNorm2d, NLL of log-softmax,
SGD lr 0.01, weight decay 1e-4 on every parameter). A warm-up pass over the first --warmup-samples
samples runs first (its mean loss is reported as "initial_loss", the loss near the start of training);
then --epochs full passes are timed, each in a seeded shuffled order. The loss is summed on the tensor
side and read once per epoch, like the other systems, so no per-step `.item()` sync is timed.

If torch cannot be imported, prints {"system":"pytorch","error":...} and exits 0 so the driver can go on.
"""
import argparse
import json
import math
import os
import platform
import sys
import time


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="?", help="raw uint8 file: N*784 pixels then N labels")
    p.add_argument("--synthetic", type=int, default=0, help="train on N synthetic images instead of a data file")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warmup-samples", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    return p.parse_args()


def load(args, torch):
    if args.data:
        raw = open(args.data, "rb").read()
        if len(raw) == 0 or len(raw) % 785 != 0:
            raise ValueError(f"{args.data}: {len(raw)} bytes is not a multiple of 785 (784 pixels + 1 label per image)")
        n = len(raw) // 785
        buf = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        images = buf[: n * 784].reshape(n, 1, 28, 28).float().div_(255.0)
        labels = buf[n * 784:].long()
        if int(labels.max()) > 9:
            raise ValueError(f"{args.data}: labels must be 0..9, found {int(labels.max())}")
        return images, labels
    n = args.synthetic
    if n <= 0:
        raise ValueError("give a data file or --synthetic N")
    g = torch.Generator().manual_seed(args.seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.rand(n, 1, 28, 28, generator=g) * 0.3
    for c in range(10):  # a bright block whose position depends on the class: learnable
        r, q = divmod(c, 4)
        images[labels == c, :, 4 + 7 * r: 10 + 7 * r, 2 + 6 * q: 8 + 6 * q] += 0.7
    return images.clamp_(0, 1), labels


def main():
    args = parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        emit({"system": "pytorch", "error": f"torch not installed: apt-get install python3-torch ({e})"})
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    class SimpleCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.bn1 = nn.BatchNorm2d(10)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.bn2 = nn.BatchNorm2d(20)
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)
            self.dropout = nn.Dropout(p=0.5)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = self.dropout(self.bn1(x))
            x = F.relu(F.max_pool2d(self.conv2(x), 2))
            x = self.dropout(self.bn2(x))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            return F.log_softmax(self.fc2(x), dim=1)

    try:
        images, labels = load(args, torch)
    except (OSError, ValueError) as e:
        emit({"system": "pytorch", "error": str(e)})
        return 1
    n = images.shape[0]
    model = SimpleCNN()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    bs = args.batch_size

    def run_pass(order):
        """Trains over the samples in `order`; returns (mean batch loss, steps)."""
        total = torch.zeros(())
        steps = 0
        for off in range(0, len(order), bs):
            idx = order[off: off + bs]
            x, y = images[idx], labels[idx]
            opt.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            opt.step()
            total += loss.detach()
            steps += 1
        return float(total) / max(steps, 1), steps

    warm = min(args.warmup_samples, n)
    t0 = time.perf_counter()
    initial_loss, _ = run_pass(torch.arange(warm))
    warmup_seconds = time.perf_counter() - t0

    epoch_seconds, epoch_losses = [], []
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed * 1000003 + epoch))
        t0 = time.perf_counter()
        loss, _ = run_pass(order)
        epoch_seconds.append(time.perf_counter() - t0)
        epoch_losses.append(loss)

    timed = sum(epoch_seconds)
    final_loss = epoch_losses[-1] if epoch_losses else initial_loss
    emit({
        "system": "pytorch",
        "version": torch.__version__,
        "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs)",
        "threads": torch.get_num_threads(),
        "samples": n,
        "epochs": args.epochs,
        "batch_size": bs,
        "warmup_samples": warm,
        "warmup_seconds": warmup_seconds,
        "samples_per_sec": (n * args.epochs) / timed if timed > 0 else None,
        "epoch_seconds": epoch_seconds,
        "epoch_losses": epoch_losses,
        "initial_loss": initial_loss,
        "final_loss": final_loss,
        "valid": math.isfinite(final_loss) and math.isfinite(initial_loss) and final_loss < initial_loss,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
