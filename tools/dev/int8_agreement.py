#!/usr/bin/env python3
"""Argmax agreement of a model's int8 path with its float32 path, through `semfuse predict`.

    python3 tools/dev/int8_agreement.py WEIGHTS IMAGE... [--exe .build/release/semfuse]

WEIGHTS is anything `semfuse predict --weights` takes (a joint-network .safetensors, 'deeplab').
For each image, runs `semfuse predict IMAGE --weights WEIGHTS --save-raw DIR --precision P` for
float32 and int8 and compares the argmax of the raw logits (segm.npy) pixel by pixel, at the
network's output resolution. Also reports the median top-2 probability gap of the float32 logits:
near-tied logits (random weights) flip under any rounding, trained ones should not.
Dev-only (numpy); needs a CPU with AVX-512 VNNI for the int8 path.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def logits(exe, weights, image, precision, directory):
    out = os.path.join(directory, precision)
    subprocess.run([exe, "predict", image, "--weights", weights, "--save-raw", out, "-o", os.path.join(directory, "pred"),
                    "--precision", precision], check=True, stdout=subprocess.DEVNULL)
    return np.load(os.path.join(out, "segm.npy"))[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--exe", default=os.path.join(ROOT, ".build", "release", "semfuse"))
    args = parser.parse_args()
    agree = total = 0
    gaps = []
    with tempfile.TemporaryDirectory() as tmp:
        for image in args.images:
            f = logits(args.exe, args.weights, image, "float32", tmp)
            q = logits(args.exe, args.weights, image, "int8", tmp)
            same = int((f.argmax(0) == q.argmax(0)).sum())
            p = np.exp(f - f.max(0, keepdims=True))
            p /= p.sum(0, keepdims=True)
            top2 = np.sort(p, axis=0)[-2:]
            gaps.append(float(np.median(top2[1] - top2[0])))
            agree += same
            total += f[0].size
            print(f"{os.path.basename(image)}: {100 * same / f[0].size:.2f} % ({f.shape[2]}x{f.shape[1]}), "
                  f"median top-2 probability gap {gaps[-1]:.3f}", flush=True)
    print(f"overall: {100 * agree / total:.3f} % of {total} pixels agree; median of the images' top-2 gaps {np.median(gaps):.3f}")


if __name__ == "__main__":
    sys.exit(main())
