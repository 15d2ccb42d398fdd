#!/usr/bin/env python3
"""Accuracy of a mesh's surface, not of its vertices: `semfuse evaluate --every 1`'s map-to-depth
accuracy (distance to the nearest measured sample: every frame's depth at every 4th pixel within
3 m, back-projected with the ground-truth poses) for points drawn uniformly over the triangles'
area, next to the same figure for the mesh's vertices. Two meshes of the same surface with
different vertex spreads (e.g. `semfuse mesh --coarsen 0` and the default) should agree on the
first and may differ on the second. Dev-only (numpy, scipy, pillow, plyfile).

    python3 tools/dev/mesh_surface_accuracy.py SEQ MESH.ply [MESH2.ply ...] [--samples N]
"""
import argparse

import numpy as np
import plyfile
from scipy.spatial import cKDTree

from accuracy_by_density import measured_samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sequence")
    parser.add_argument("meshes", nargs="+")
    parser.add_argument("--samples", type=int, default=400_000)
    args = parser.parse_args()
    tree = cKDTree(measured_samples(args.sequence))
    rng = np.random.default_rng(0)
    for path in args.meshes:
        ply = plyfile.PlyData.read(path)
        v = ply["vertex"].data
        V = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
        F = np.stack(ply["face"].data["vertex_indices"]).astype(np.int64)
        a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
        area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
        pick = rng.choice(len(F), size=args.samples, p=area / area.sum())
        r1, r2 = rng.random(args.samples), rng.random(args.samples)
        s = np.sqrt(r1)
        points = (1 - s)[:, None] * a[pick] + (s * (1 - r2))[:, None] * b[pick] + (s * r2)[:, None] * c[pick]
        d_area, _ = tree.query(points)
        d_vertex, _ = tree.query(V)
        print(f"{path}: {len(V)} vertices, {len(F)} triangles, {area.sum():.3f} m^2; accuracy median over the area "
              f"{np.median(d_area) * 100:.3f} cm (within 2 cm {np.mean(d_area < 0.02) * 100:.2f} %), "
              f"over the vertices {np.median(d_vertex) * 100:.3f} cm")


if __name__ == "__main__":
    main()
