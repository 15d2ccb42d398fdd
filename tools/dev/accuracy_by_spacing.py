#!/usr/bin/env python3
"""How `semfuse evaluate --every 1`'s map-to-depth accuracy depends on the spacing of the measured
samples: the same median (distance from each map point to the nearest measured sample, every
frame's depth back-projected with the ground-truth poses, within 3 m), with the samples taken at
every STEP-th pixel for each STEP given (`evaluate` uses 4). Dev-only (numpy, scipy, pillow, plyfile).

    python3 tools/dev/accuracy_by_spacing.py SEQ MAP.ply [MAP2.ply ...] [--steps 1,2,4]
"""
import argparse

import numpy as np
from scipy.spatial import cKDTree

from accuracy_by_density import measured_samples, points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("seq")
    parser.add_argument("maps", nargs="+")
    parser.add_argument("--steps", default="1,2,4")
    args = parser.parse_args()
    for step in [int(s) for s in args.steps.split(",")]:
        tree = cKDTree(measured_samples(args.seq, step=step))
        for path in args.maps:
            d, _ = tree.query(points(path), workers=2)
            print(f"every {step} px: {path}: accuracy median {np.median(d) * 100:.3f} cm, "
                  f"within 2 cm {np.mean(d < 0.02) * 100:.1f} %", flush=True)


if __name__ == "__main__":
    main()
