#!/usr/bin/env python3
"""Label agreement of two semfuse maps of the same run that differ only in label storage.

Usage: compare_map_labels.py REFERENCE.ply OTHER.ply

Both maps must come from the same command with a different --label-storage (dense against
top<k>): label storage does not change geometry, so the points are the same in the same order
(checked). Prints the share of points whose label agrees, overall and by the reference's label
confidence, and the largest label-confidence difference. Development aid (needs plyfile);
the product does not use it.
"""
import sys

import numpy as np
import plyfile


def load(path):
    v = plyfile.PlyData.read(path)["vertex"].data
    xyz = np.stack([v["x"], v["y"], v["z"]], axis=1)
    return xyz, np.asarray(v["label"]), np.asarray(v["label_confidence"])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a_xyz, a_label, a_conf = load(sys.argv[1])
    b_xyz, b_label, b_conf = load(sys.argv[2])
    if a_xyz.shape != b_xyz.shape or not np.array_equal(a_xyz, b_xyz):
        sys.exit("the maps' points differ: not the same run")
    n = len(a_label)
    same = a_label == b_label
    labelled = a_label >= 0
    print(f"points {n}, labelled in the reference {labelled.sum()} ({100 * labelled.mean():.1f} %)")
    print(f"labels agree on {same.sum()} of {n} points ({100 * same.mean():.3f} %)")
    for lo, hi in [(0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)]:
        sel = labelled & (a_conf >= lo) & (a_conf < hi)
        if sel.any():
            print(f"  reference confidence [{lo:.1f}, {min(hi, 1):.1f}): {sel.sum()} points, agree {100 * same[sel].mean():.3f} %")
    print(f"largest label-confidence difference where labels agree: {np.abs(a_conf - b_conf)[same].max():.2e}")


if __name__ == "__main__":
    main()
