#!/usr/bin/env python3
"""Tracking and relocalisation on randomly cut sequences.

Each seed makes a folder of links to frames of a 7-Scenes-layout sequence: 3-5 stretches of
15-110 frames from random places, every frame or every 2nd, a third of them played backwards,
one after another. Such cuts are what a real recording with dropped stretches, a covered lens or
a replayed file looks like to the tracker, and each cut is a relocalisation (or a separate piece
of map) to get right. `semfuse reconstruct DIR --poses track --labels none --no-preview` runs on
each, and the script prints one JSON line per seed: the stretches, frames fused, the trajectory's
ATE RMSE and largest error against the ground truth (SE(3) alignment over the fused frames, in
mm) and the summary's pieces line. A wrong relocalisation or join shows as a largest error of
decimetres: the frames after it were fused as a second copy of the room.

    python3 tools/dev/random_cuts.py .build/release/semfuse ../shared/data/7scenes-redkitchen \
        --seeds 1-20 --work /tmp/cuts

Needs numpy. Development only: the product and its tests do not use it.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trajectory_alignment import aligned_errors  # noqa: E402


def colour_suffix(source):
    """7-Scenes frames have JPEG colour; `semfuse convert --format 7scenes` writes PNG."""
    return "color.png" if os.path.exists(os.path.join(source, "frame-000000.color.png")) else "color.jpg"


def make(seed, source, work, count):
    rng = random.Random(seed)
    folder = os.path.join(work, f"cuts{seed}")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.symlink(os.path.join(source, "camera-intrinsics.txt"), os.path.join(folder, "camera-intrinsics.txt"))
    frames, stretches = [], []
    for _ in range(rng.randint(3, 5)):
        n = rng.randint(15, 110)
        step = rng.choice([1, 1, 2])
        start = rng.randint(0, count - 1 - n * step)
        stretch = list(range(start, start + n * step, step))
        if rng.random() < 0.3:
            stretch.reverse()
        stretches.append(f"{stretch[0]}..{stretch[-1]}/{step}")
        frames += stretch
    for position, frame in enumerate(frames):
        for suffix in (colour_suffix(source), "depth.png", "pose.txt"):
            os.symlink(os.path.join(source, f"frame-{frame:06d}.{suffix}"), os.path.join(folder, f"frame-{position:06d}.{suffix}"))
    return folder, stretches, len(frames)


def errors(trajectory, folder):
    """Per-frame position error (m) after the least-squares rigid alignment (no scale)."""
    rows = [line.split() for line in open(trajectory) if line.strip() and not line.startswith("#")]
    if len(rows) < 3:
        return None
    estimated, truth = [], []
    for row in rows:
        position = int(round(float(row[0])))   # 7-Scenes timestamps are the frame positions
        estimated.append([float(x) for x in row[1:4]])
        truth.append(np.loadtxt(os.path.join(folder, f"frame-{position:06d}.pose.txt"))[:3, 3])
    return aligned_errors(estimated, truth)


def seeds(text):
    result = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        result += list(range(int(a), int(b or a) + 1))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("sequence", help="7-Scenes layout folder with ground-truth poses (colour as .jpg, or .png as "
                        "`semfuse convert --format 7scenes` writes it, e.g. from a `semfuse synth` room)")
    parser.add_argument("--seeds", type=seeds, default=seeds("1-8"))
    parser.add_argument("--work", default="/tmp/random-cuts")
    parser.add_argument("--tag", default="run", help="prefix of the output files in --work")
    parser.add_argument("--flags", default="", help="more `reconstruct` flags, e.g. \"--photometric-weight 1 --icp-weights "
                        "uniform\" for a synthetic room converted to 7-Scenes (its colour is registered, its depth rendered)")
    args = parser.parse_args()
    args.sequence = os.path.abspath(args.sequence)   # the links are made in another folder
    count = len([n for n in os.listdir(args.sequence) if n.endswith(".depth.png")])
    for seed in args.seeds:
        folder, stretches, n = make(seed, args.sequence, args.work, count)
        output = os.path.join(args.work, f"{args.tag}-cuts{seed}")
        start = time.time()
        run = subprocess.run([args.binary, "reconstruct", folder, "-o", output + ".ply", "--poses", "track", "--labels", "none",
                              "--no-preview"] + args.flags.split(), capture_output=True, text=True)
        with open(output + ".log", "w") as log:
            log.write(run.stdout + run.stderr)
        lines = (run.stdout + run.stderr).splitlines()
        fused = next((l.split(": ")[1].split(" selected")[0] for l in lines if "selected frames fused" in l), None)
        pieces = next((l.strip() for l in lines if "separate pieces" in l), None)
        e = errors(output + ".trajectory.txt", folder) if run.returncode == 0 else None
        print(json.dumps({"seed": seed, "stretches": stretches, "frames": n, "status": run.returncode,
                          "seconds": round(time.time() - start, 1), "fused": fused,
                          "ate_mm": None if e is None else round(1000 * float(np.sqrt((e ** 2).mean())), 1),
                          "max_mm": None if e is None else round(1000 * float(e.max()), 1), "pieces": pieces}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
