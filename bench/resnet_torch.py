"""The same ResNet-20 as bench_nn resnet (and fm.ResNet{}), trained with PyTorch for comparison.

Optional: bench/run.sh runs it only when BENCH_TORCH is set and a Python with torch is found
(Debian: apt-get install python3-torch). Trains at batch 128 with Adam (lr 1e-3) on the
Fashion-MNIST training images (random images of the same size when the dataset is not installed),
on --threads threads, for --batches batches after --warmup, and prints seconds per epoch of 60,000
images extrapolated from the median batch time, plus a RESULT line for bench/run.sh.

    python3 bench/resnet_torch.py [--threads 2] [--batches 40] [--warmup 5] [--channels-last]
"""
import argparse
import gzip
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def conv_bn(cin, cout, kernel, stride):
    # padding 1 for 3x3, 0 for 1x1: the outputs are 28, 14 and 7 as with "same" padding, and the
    # multiply-adds the same as the engine's (which pads bottom/right when striding)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3, 1)
        self.short = conv_bn(cin, cout, 1, stride) if stride != 1 else None

    def forward(self, x):
        y = self.b(F.relu(self.a(x)))
        return F.relu(y + (self.short(x) if self.short is not None else x))


class ResNet20(nn.Module):
    def __init__(self, width=16, per_stage=3):
        super().__init__()
        self.stem = conv_bn(1, width, 3, 1)
        blocks, cin = [], width
        for stage in range(3):
            c = width << stage
            for b in range(per_stage):
                blocks.append(Block(cin, c, 2 if stage > 0 and b == 0 else 1))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(x.mean((2, 3)))


def load_images():
    path = os.path.join(DATA, "train-images-idx3-ubyte.gz")
    lpath = os.path.join(DATA, "train-labels-idx1-ubyte.gz")
    try:
        with gzip.open(path) as f:
            pix = f.read()[16:]
        with gzip.open(lpath) as f:
            lab = f.read()[8:]
        x = torch.frombuffer(bytearray(pix), dtype=torch.uint8).view(-1, 1, 28, 28)
        y = torch.frombuffer(bytearray(lab), dtype=torch.uint8).long()
        return x.float() / 255.0, y, "fashion-mnist"
    except OSError:
        g = torch.Generator().manual_seed(1)
        return torch.rand(60000, 1, 28, 28, generator=g), torch.randint(0, 10, (60000,), generator=g), "random"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x, y, source = load_images()
    model = ResNet20()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    macs = 31021952  # forward multiply-adds per image (bench_nn resnet prints the same count)
    order = torch.randperm(x.shape[0])
    times, cpus = [], []
    model.train()
    for b in range(a.warmup + a.batches):
        idx = order[(b * a.batch) % (x.shape[0] - a.batch):][: a.batch]
        xb, yb = x[idx].contiguous(memory_format=fmt), y[idx]
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        t, c = time.perf_counter() - t0, time.process_time() - c0
        if b >= a.warmup:
            times.append(t)
            cpus.append(c)
    per_image = statistics.median(times) / a.batch
    cpu_per_image = statistics.median(cpus) / a.batch
    epoch = per_image * 60000
    gflops = 6 * macs * 60000 / epoch / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pytorch {torch.__version__} resnet20: {a.threads} threads, batch {a.batch}, "
          f"{'channels-last' if a.channels_last else 'NCHW'}, data {source}; median of {a.batches} "
          f"batches: {epoch:.1f} s per 60000-image epoch ({gflops:.1f} GFLOP/s, cpu "
          f"{cpu_per_image * 60000:.1f} s), loss {loss.item():.3f}, peak RSS {rss:.0f} MB")
    print(f"RESULT model=torch-resnet epoch_s={epoch:.3f} cpu_s={cpu_per_image * 60000:.3f} "
          f"gflops={gflops:.1f} infer_img_s=0 rss_mb={rss:.1f} test_acc=0 epochs=0 "
          f"kernel=torch{'-cl' if a.channels_last else ''} threads={a.threads} batch={a.batch} "
          f"data={source} target_s=-1")


if __name__ == "__main__":
    main()
