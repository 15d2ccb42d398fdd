#!/usr/bin/env python3
"""Screened Poisson (Open3D's, Kazhdan's method) over a surfel map written by `semfuse
reconstruct`: the alternative to the surfel volume that docs/meshing.md compares against.
Dev-only (pip install open3d-cpu).

    python3 tools/dev/poisson_reference.py MAP.ply OUT.ply [--depth 10] [--trim 0.02]

Uses the map's positions and normals, solves at octree depth --depth, removes the vertices of
lowest density (the --trim fraction, Open3D's recommended trim of unsupported surface), writes
the mesh and prints one JSON line with the time and size. Score it with `semfuse evaluate SEQ
--map OUT.ply`.
"""
import argparse
import json
import time

import numpy as np
import open3d as o3d


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("map")
    parser.add_argument("output")
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--trim", type=float, default=0.02, help="fraction of lowest-density vertices removed")
    args = parser.parse_args()
    cloud = o3d.io.read_point_cloud(args.map)
    if not cloud.has_normals():
        raise SystemExit(f"error: {args.map}: the points have no normals")
    t0 = time.perf_counter()
    mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=args.depth)
    seconds = time.perf_counter() - t0
    density = np.asarray(density)
    mesh.remove_vertices_by_mask(density < np.quantile(density, args.trim))
    o3d.io.write_triangle_mesh(args.output, mesh, write_ascii=False)
    print(json.dumps({"map": args.map, "points": len(cloud.points), "depth": args.depth, "trim": args.trim,
                      "seconds": seconds, "vertices": len(mesh.vertices), "triangles": len(mesh.triangles)}))


if __name__ == "__main__":
    main()
