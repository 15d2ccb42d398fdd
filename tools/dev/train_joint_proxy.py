#!/usr/bin/env python3
"""A trained stand-in for the joint network, to measure what int8 does to trained weights (issue 12).

    python3 tools/dev/train_joint_proxy.py LABELS OUT.safetensors [--minutes 20] [--frames ../shared/data/7scenes-redkitchen]

Dev-only (torch). The paper's NYU checkpoints cannot be had here, and the golden weights are
random: their logits lie within 1e-4 of each other, so int8 agreement on them says nothing about
a trained network. This trains the joint network of ../shared/docs/network.md (ImageNet
MobileNet-v2 encoder from ../shared/data/weights, decoder from scratch) on 7-Scenes kitchen
frames to reproduce the bundled DeepLab's labels (LABELS: a folder of `semfuse predict … --weights
deeplab` output, `<frame>.label-ids.png`) and the sensor's depth, at 320x240, for a fixed time.
Frames whose index is a multiple of 10 are held out. The result is written with the official key
names (BatchNorm unfolded), so `semfuse` loads it like a converted checkpoint:

    semfuse predict IMAGE --weights OUT.safetensors --save-raw DIR [--precision int8]

It is a proxy (distilled labels, one kitchen), not the paper's network; what it is for is a
network whose logits and weights look like a trained one's.
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench_against_onnxruntime import JointNet, load_safetensors  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def load_frames(labels_dir, frames_dir):
    """(index, rgb 240x320 normalised CHW, labels 60x80, depth 60x80 metres, 0 = none) per frame."""
    out = []
    for path in sorted(glob.glob(os.path.join(labels_dir, "*.label-ids.png"))):
        index = int(os.path.basename(path).split(".")[0])
        rgb = Image.open(os.path.join(frames_dir, f"frame-{index:06d}.color.jpg")).convert("RGB").resize((320, 240), Image.BOX)
        x = ((np.asarray(rgb, np.float32) / 255 - MEAN) / STD).transpose(2, 0, 1)
        labels = np.asarray(Image.open(path))[4::8, 4::8].astype(np.int64)
        depth = np.asarray(Image.open(os.path.join(frames_dir, f"frame-{index:06d}.depth.png")), np.float32)[4::8, 4::8]
        depth = np.where((depth > 0) & (depth < 65535), depth / 1000, 0).astype(np.float32)
        out.append((index, x, labels, depth))
    return out


def save_safetensors(state, path, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            continue   # num_batches_tracked
        data = tensor.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for b in blobs:
            f.write(b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels")
    parser.add_argument("out")
    parser.add_argument("--frames", default=os.path.join(ROOT, "..", "shared", "data", "7scenes-redkitchen"))
    parser.add_argument("--encoder", default=None, help="encoder .safetensors (tools/convert_checkpoint.py of the torchvision weights)")
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=40, help="logits (semfuse loads 40: the ADE32 ids of the labels use the first 32)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)

    data = load_frames(args.labels, args.frames)
    train = [d for d in data if d[0] % 10 != 0]
    held = [d for d in data if d[0] % 10 == 0]
    print(f"{len(train)} training frames, {len(held)} held out", flush=True)

    net = JointNet(classes=args.classes)
    if args.encoder:
        missing, unexpected = net.load_state_dict(load_safetensors(args.encoder), strict=False)
        assert not unexpected, unexpected
    encoder = [p for n, p in net.named_parameters() if n.startswith("layer")]
    decoder = [p for n, p in net.named_parameters() if not n.startswith("layer")]
    optimiser = torch.optim.Adam([{"params": encoder, "lr": 2e-4}, {"params": decoder, "lr": 2e-3}])

    def batch(items, flip):
        x = torch.from_numpy(np.stack([d[1] for d in items]))
        y = torch.from_numpy(np.stack([d[2] for d in items]))
        z = torch.from_numpy(np.stack([d[3] for d in items]))
        if flip:
            x, y, z = x.flip(-1), y.flip(-1), z.flip(-1)
        return x, y, z

    def evaluate():
        net.eval()
        with torch.no_grad():
            x, y, z = batch(held, False)
            segm, depth = net(x)
            accuracy = float((segm.argmax(1) == y).float().mean())
            top2 = segm.softmax(1).topk(2, dim=1).values
            margin = float((top2[:, 0] - top2[:, 1]).median())
            valid = z > 0
            error = float((depth[:, 0].abs() - z)[valid].abs().median())
        net.train()
        return accuracy, margin, error

    rng = np.random.default_rng(0)
    start, step = time.time(), 0
    budget = args.minutes * 60
    while time.time() - start < budget:
        items = [train[i] for i in rng.choice(len(train), args.batch, replace=False)]
        x, y, z = batch(items, rng.random() < 0.5)
        segm, depth = net(x)
        valid = z > 0
        loss = F.cross_entropy(segm, y) + 0.5 * (depth[:, 0] - z)[valid].abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        elapsed = time.time() - start
        if elapsed > 0.6 * budget and optimiser.param_groups[1]["lr"] > 5e-4:
            for g in optimiser.param_groups:
                g["lr"] /= 5
        if step % 50 == 0:
            accuracy, margin, error = evaluate()
            print(f"step {step} ({elapsed / 60:.1f} min): loss {float(loss):.3f}; held-out pixel agreement with DeepLab "
                  f"{100 * accuracy:.1f} %, median top-2 probability gap {margin:.3f}, median depth error {error:.3f} m", flush=True)
    accuracy, margin, error = evaluate()
    print(f"done after {step} steps: held-out agreement {100 * accuracy:.1f} %, top-2 gap {margin:.3f}, depth error {error:.3f} m")
    save_safetensors(net.state_dict(), args.out, {"semfuse.source": "tools/dev/train_joint_proxy.py (dev proxy, not the paper's)"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
