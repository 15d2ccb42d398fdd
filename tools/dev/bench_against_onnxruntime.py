#!/usr/bin/env python3
"""The joint network in onnxruntime against `semfuse bench network`, in the same run (issue 12).

    python3 tools/dev/bench_against_onnxruntime.py [--rounds 3] [--runs 10] [--size 640x480 ...]

Dev-only: pip install /opt/wheels/torch-*.whl onnx onnxruntime. The product and its tests do
not need any of it.

1. Builds the network of ../shared/docs/network.md in PyTorch (MobileNet-v2 encoder, Light-Weight
   RefineNet decoder, two heads), loads ../shared/data/network-golden/weights.safetensors (official
   key names, BatchNorm not folded) and checks it against the golden PyTorch outputs there.
2. Exports it to ONNX (opset 17) and checks onnxruntime's outputs against PyTorch's.
3. For each round, times onnxruntime (ORT_ENABLE_ALL, 1 and 2 intra-op threads) and then
   `semfuse bench network --json` (release build) at the same sizes and thread counts, so both
   see the same machine state; prints per-round medians and, over the rounds, the median of each
   and our time as a multiple of onnxruntime's (the issue's goal: at most 0.8 at 640x480 on 2
   threads).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, "..", "shared", "data", "network-golden")


def load_safetensors(path):
    """The safetensors layout (8-byte header length, JSON header, raw data), float32 only."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]).copy())
    return out


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, t, stride):
        super().__init__()
        hidden = cin * t
        # The expand conv is present even when t == 1 (network.md, surprise #1).
        self.output = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                    conv_bn(hidden, cout, 1, act=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.output(x)
        return x + y if self.residual else y


class CRP(nn.Module):
    def __init__(self, depthwise):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"{i}_outvar_dimred", nn.Conv2d(256, 256, 1, bias=False, groups=256 if depthwise else 1))

    def forward(self, x):
        acc, b = x, x
        for i in range(1, 5):
            b = getattr(self, f"{i}_outvar_dimred")(F.max_pool2d(b, 5, 1, 2))
            acc = b + acc
        return acc


class JointNet(nn.Module):
    # (t, cout, blocks, stride) for layer2..layer8
    STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes=40):
        super().__init__()
        self.layer1 = conv_bn(3, 32, 3, 2)
        cin = 32
        for s, (t, cout, n, stride) in enumerate(self.STAGES, start=2):
            blocks = []
            for b in range(n):
                blocks.append(InvertedResidual(cin, cout, t, stride if b == 0 else 1))
                cin = cout
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        for name, c in [("conv8", 320), ("conv7", 160), ("conv6", 96), ("conv5", 64), ("conv4", 32), ("conv3", 24)]:
            setattr(self, name, nn.Conv2d(c, 256, 1, bias=False))
        for i in (4, 3, 2, 1):
            setattr(self, f"crp{i}", nn.Sequential(CRP(depthwise=(i == 1))))
        for i in (4, 3, 2):
            setattr(self, f"conv_adapt{i}", nn.Conv2d(256, 256, 1, bias=False))
        self.pre_depth = nn.Conv2d(256, 256, 1, groups=256, bias=False)
        self.depth = nn.Conv2d(256, 1, 3, padding=1)
        self.pre_segm = nn.Conv2d(256, 256, 1, groups=256, bias=False)
        self.segm = nn.Conv2d(256, classes, 3, padding=1)

    def forward(self, x):
        x = self.layer1(x)
        x = self.layer2(x)
        l3 = self.layer3(x)
        l4 = self.layer4(l3)
        l5 = self.layer5(l4)
        l6 = self.layer6(l5)
        l7 = self.layer7(l6)
        l8 = self.layer8(l7)
        up = lambda y, ref: F.interpolate(y, size=ref.shape[2:], mode="bilinear", align_corners=False)
        y = F.relu6(self.conv8(l8) + self.conv7(l7))
        y = self.conv_adapt4(self.crp4(y))
        y = up(y, l6)
        y = F.relu6((self.conv5(l5) + self.conv6(l6)) + y)
        y = self.conv_adapt3(self.crp3(y))
        y = up(y, l4)
        y = F.relu6(y + self.conv4(l4))
        y = self.conv_adapt2(self.crp2(y))
        y = up(y, l3)
        y = F.relu6(self.conv3(l3) + y)
        z = self.crp1(y)
        segm = self.segm(F.relu6(self.pre_segm(z)))
        depth = self.depth(F.relu6(self.pre_depth(z)))
        return segm, depth


def build():
    net = JointNet().eval()
    weights = load_safetensors(os.path.join(GOLDEN, "weights.safetensors"))
    # Our module tree matches the official names except for the CRP's Sequential wrapper (`.0.`),
    # which the Sequential itself provides.
    missing, unexpected = net.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"weights do not fit the network: missing {missing[:5]}, unexpected {unexpected[:5]}")
    x = torch.from_numpy(np.load(os.path.join(GOLDEN, "in_480x640.npy")))
    with torch.inference_mode():
        segm, depth = net(x)
    ds = float((segm - torch.from_numpy(np.load(os.path.join(GOLDEN, "out_480x640_segm.npy")))).abs().max())
    dd = float((depth - torch.from_numpy(np.load(os.path.join(GOLDEN, "out_480x640_depth.npy")))).abs().max())
    print(f"PyTorch against the golden outputs at 640x480: max |diff| logits {ds:.2e}, depth {dd:.2e}")
    if ds > 1e-3 or dd > 1e-3:
        raise SystemExit("the PyTorch network does not reproduce the golden outputs")
    return net, x


def ort_session(path, threads):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def time_ort(session, w, h, runs, warmup):
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    name = session.get_inputs()[0].name
    for _ in range(warmup):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def time_semfuse(binary, w, h, threads, runs, warmup, precision="float32"):
    out = subprocess.run([binary, "bench", "network", "--size", f"{w}x{h}", "--threads", str(threads),
                          "--runs", str(runs), "--warmup", str(warmup), "--precision", precision, "--json"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            for key in ("median_ms", "median"):
                if key in obj:
                    return float(obj[key])
    raise SystemExit(f"no median in semfuse's output: {out[:300]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", action="append", default=None, help="WIDTHxHEIGHT (default 640x480 and 320x240)")
    parser.add_argument("--threads", type=int, action="append", default=None, help="default 1 and 2")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "semfuse"))
    parser.add_argument("--precision", choices=["float32", "int8"], default="float32",
                        help="semfuse's arithmetic (onnxruntime always runs the float32 export)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["640x480", "320x240"])]
    threads = args.threads or [1, 2]
    if not os.path.exists(args.binary):
        raise SystemExit(f"{args.binary}: build it first (swift build -c release)")

    import onnxruntime as ort
    net, x = build()
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for w, h in sizes:
            path = os.path.join(tmp, f"joint_{w}x{h}.onnx")
            dummy = torch.zeros(1, 3, h, w)
            torch.onnx.export(net, dummy, path, opset_version=17, input_names=["image"], output_names=["segm", "depth"],
                              dynamo=False)
            models[(w, h)] = path
        # onnxruntime against PyTorch on the golden input.
        if (640, 480) in models:
            s = ort_session(models[(640, 480)], 2)
            segm, depth = s.run(None, {"image": x.numpy()})
            with torch.inference_mode():
                ts, td = net(x)
            print(f"onnxruntime {ort.__version__} against PyTorch at 640x480: max |diff| logits "
                  f"{np.abs(segm - ts.numpy()).max():.2e}, depth {np.abs(depth - td.numpy()).max():.2e}")
        results = {}
        for r in range(args.rounds):
            for (w, h) in sizes:
                for t in threads:
                    o = time_ort(ort_session(models[(w, h)], t), w, h, args.runs, args.warmup)
                    m = time_semfuse(args.binary, w, h, t, args.runs, args.warmup, args.precision)
                    results.setdefault((w, h, t), []).append((o, m))
                    print(f"round {r + 1}: {w}x{h}, {t} thread(s): onnxruntime {o:.1f} ms, semfuse {args.precision} {m:.1f} ms ({m / o:.2f}x)", flush=True)
    print("\nmedians over the rounds:")
    summary = []
    for (w, h, t), pairs in sorted(results.items(), key=lambda kv: (-kv[0][0], kv[0][2])):
        o = statistics.median(p[0] for p in pairs)
        m = statistics.median(p[1] for p in pairs)
        ratios = sorted(p[1] / p[0] for p in pairs)
        print(f"  {w}x{h}, {t} thread(s): onnxruntime {o:.1f} ms, semfuse {m:.1f} ms: {m / o:.2f}x "
              f"(the rounds' ratios, sorted: {', '.join(f'{v:.2f}' for v in ratios)})")
        summary.append({"width": w, "height": h, "threads": t, "onnxruntime_median_ms": o, "semfuse_median_ms": m,
                        "ratio": m / o, "round_ratios": ratios})
    print(json.dumps({"onnxruntime": ort.__version__, "torch": torch.__version__, "results": summary}))


if __name__ == "__main__":
    main()
