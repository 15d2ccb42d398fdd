#!/usr/bin/env python3
"""How far a map's or mesh's points lie from the measured surface across it, not along it:
for each point, the signed distance along its normal to the centroid of the 12 nearest measured
samples (the same samples as `semfuse evaluate --every 1`: every frame's depth at every 4th
pixel within 3 m, back-projected with the ground-truth poses), next to the distance to the
nearest sample that `evaluate`'s accuracy figure takes. Dev-only (numpy, scipy, pillow, plyfile).

    python3 tools/dev/offset_from_depth.py SEQ MAP_OR_MESH.ply [...]

The nearest-sample distance mixes how far the point is from the surface with how far apart the
samples lie along it; the offset along the normal is the first part alone. Points farther than
2 cm from any sample are left out.
"""
import os
import sys

import numpy as np
import plyfile
from scipy.spatial import cKDTree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy_by_density import measured_samples  # noqa: E402


def main():
    seq = sys.argv[1]
    ref = measured_samples(seq)
    tree = cKDTree(ref)
    for path in sys.argv[2:]:
        v = plyfile.PlyData.read(path)["vertex"].data
        P = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
        N = np.stack([v["nx"], v["ny"], v["nz"]], 1).astype(np.float64)
        N /= np.linalg.norm(N, axis=1, keepdims=True) + 1e-12
        d, idx = tree.query(P, k=12)
        near = d[:, 0] < 0.02
        signed = ((P - ref[idx].mean(axis=1)) * N).sum(1)[near]
        print(f"{path}: {near.sum()} points; along the normal to the nearby samples: median {np.median(signed) * 1000:.2f} mm "
              f"(mean {signed.mean() * 1000:.2f}), median |offset| {np.median(np.abs(signed)) * 1000:.2f} mm; "
              f"nearest sample median {np.median(d[near, 0]) * 1000:.2f} mm")


if __name__ == "__main__":
    main()
