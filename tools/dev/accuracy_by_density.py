#!/usr/bin/env python3
"""Where a map's accuracy figure comes from: `semfuse evaluate --every 1`'s map-to-depth accuracy
(distance from each map point to the nearest measured sample: every frame's depth at every 4th
pixel within 3 m, back-projected with the ground-truth poses), split by how densely the measured
samples cover the map point (samples within 1 cm) and by the point's distance to the nearest
surfel of MAP. Dev-only (numpy, scipy, pillow, plyfile).

    python3 tools/dev/accuracy_by_density.py SEQ MAP.ply [MESH.ply]

SEQ is a 7-Scenes folder (frame-NNNNNN.depth.png in mm, .pose.txt, camera-intrinsics.txt).
The medians it prints for MAP and MESH are the ones `semfuse evaluate SEQ --map X --every 1`
prints (same samples, exact nearest neighbours), so the split explains that figure.
"""
import glob
import os
import sys

import numpy as np
import plyfile
from PIL import Image
from scipy.spatial import cKDTree


def measured_samples(seq, step=4, max_depth=3.0):
    path = os.path.join(seq, "camera-intrinsics.txt")
    K = np.loadtxt(path) if os.path.exists(path) else np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])
    out = []
    for depth_path in sorted(glob.glob(os.path.join(seq, "frame-*.depth.png"))):
        D = np.array(Image.open(depth_path)).astype(np.float64)
        D[D >= 65535] = 0
        D /= 1000.0
        T = np.loadtxt(depth_path.replace(".depth.png", ".pose.txt"))
        ys, xs = np.mgrid[0 : D.shape[0] : step, 0 : D.shape[1] : step]
        z = D[ys, xs]
        ok = (z > 0) & (z < max_depth)
        x = (xs[ok] - K[0, 2]) / K[0, 0] * z[ok]
        y = (ys[ok] - K[1, 2]) / K[1, 1] * z[ok]
        out.append((np.stack([x, y, z[ok], np.ones_like(x)], 1) @ T.T)[:, :3])
    return np.concatenate(out)


def points(path):
    v = plyfile.PlyData.read(path)["vertex"].data
    return np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)


def main():
    seq, map_path = sys.argv[1], sys.argv[2]
    mesh_path = sys.argv[3] if len(sys.argv) > 3 else None
    ref = measured_samples(seq)
    tree = cKDTree(ref)
    surfels = points(map_path)
    surfel_tree = cKDTree(surfels)
    bins = [(0, 5), (5, 20), (20, 60), (60, None)]
    print(f"{len(ref)} measured samples")
    for name, P in [("map", surfels)] + ([("mesh", points(mesh_path))] if mesh_path else []):
        d, _ = tree.query(P)
        density = np.array([len(n) for n in tree.query_ball_point(P, r=0.01)])
        print(f"{name}: {len(P)} points, accuracy median {np.median(d) * 100:.3f} cm")
        for lo, hi in bins:
            s = (density >= lo) & (density < (hi if hi is not None else 1 << 30))
            if s.any():
                label = f"[{lo}, {hi})" if hi is not None else f">= {lo}"
                print(f"  measured samples within 1 cm {label:>9}: {s.mean() * 100:5.1f} % of the points, accuracy median {np.median(d[s]) * 100:.3f} cm")
        if name == "mesh":
            near, _ = surfel_tree.query(P)
            for lo, hi in [(0, 0.003), (0.003, 0.006), (0.006, 0.01), (0.01, None)]:
                s = (near >= lo) & (near < (hi if hi is not None else 1e9))
                label = f"[{lo * 100:.1f}, {hi * 100:.1f}) cm" if hi is not None else f">= {lo * 100:.1f} cm"
                print(f"  nearest surfel {label:>14}: {s.mean() * 100:5.1f} % of the vertices, accuracy median {np.median(d[s]) * 100:.3f} cm")


if __name__ == "__main__":
    main()
