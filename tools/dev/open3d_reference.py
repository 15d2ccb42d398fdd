#!/usr/bin/env python3
"""Open3D's TSDF reconstruction of a sequence with its ground-truth poses: the peer that
`semfuse reconstruct --mesh` is measured against (issue 10). Dev-only (pip install open3d-cpu).

    python3 tools/dev/open3d_reference.py SEQ OUT.ply [--frames A:B] [--voxel 0.01]

SEQ is a 7-Scenes folder (frame-NNNNNN.color.{png,jpg}, .depth.png + .pose.txt, depth in mm, 65535 or 0
missing) or an ICL-NUIM folder (color/N.png, depth/N.png at 5000 per metre, pose.txt lines
`tx ty tz qx qy qz qw`). Integrates every selected frame into a VoxelBlockGrid (Open3D's
current TSDF, on the CPU, with its defaults: 16^3 blocks, truncation 8 voxels, extraction at
weight >= 3), extracts the triangle mesh (marching cubes), writes it as PLY and prints one JSON
line with the integration time per frame (median, p10, p90), the extraction time and the mesh
size. Score the mesh with `semfuse evaluate SEQ --map OUT.ply`.

The legacy ScalableTSDFVolume of the open3d-cpu 0.20 wheel integrated nothing here (an empty
mesh even for Open3D's own sample frame), hence the tensor API. Reading and decoding images is
not timed; `integrate` includes finding the touched blocks, as Open3D's own examples do.
"""
import argparse
import glob
import json
import os
import time

import numpy as np
import open3d as o3d
import open3d.core as o3c


def select_frames(frames, spec):
    """The frames a --frames "start:end" spec names (end exclusive, either side may be empty);
    all of them when spec is None or empty."""
    if not spec:
        return frames
    a, b = (int(x) if x else None for x in spec.split(":"))
    return frames[a:b]


def seven_scenes(folder):
    frames = sorted(glob.glob(os.path.join(folder, "frame-*.color.png")) + glob.glob(os.path.join(folder, "frame-*.color.jpg")))
    K = np.array([[585.0, 0, 320.0], [0, 585.0, 240.0], [0, 0, 1]])
    path = os.path.join(folder, "camera-intrinsics.txt")
    if os.path.exists(path):
        K = np.loadtxt(path)
    out = []
    for color in frames:
        stem = color[: -len(".color.png")]  # .color.jpg has the same length
        out.append((color, stem + ".depth.png", np.loadtxt(stem + ".pose.txt")))
    return out, K, 1000.0


def icl_nuim(folder):
    poses = np.loadtxt(os.path.join(folder, "pose.txt"), ndmin=2)
    out = []
    for k, (tx, ty, tz, qx, qy, qz, qw) in enumerate(poses):
        R = o3d.geometry.get_rotation_matrix_from_quaternion([qw, qx, qy, qz])
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = [tx, ty, tz]
        out.append((os.path.join(folder, "color", f"{k + 1}.png"), os.path.join(folder, "depth", f"{k + 1}.png"), T))
    return out, np.array([[481.2, 0, 319.5], [0, -480.0, 239.5], [0, 0, 1]]), 5000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sequence")
    parser.add_argument("output")
    parser.add_argument("--frames", default=None, help="start:end positions (end exclusive)")
    parser.add_argument("--voxel", type=float, default=0.01)
    parser.add_argument("--trunc-voxels", type=float, default=8.0, help="truncation in voxels (Open3D's default 8)")
    parser.add_argument("--weight-threshold", type=float, default=3.0, help="extraction weight (Open3D's default 3)")
    parser.add_argument("--max-depth", type=float, default=8.0)
    args = parser.parse_args()

    if os.path.exists(os.path.join(args.sequence, "pose.txt")):
        frames, K, scale = icl_nuim(args.sequence)
    else:
        frames, K, scale = seven_scenes(args.sequence)
    frames = select_frames(frames, args.frames)
    flip = K[1, 1] < 0
    if flip:
        # Open3D's pinhole model needs fy > 0: ICL-NUIM's y axis points up, so flip the camera's
        # y (and z, to stay right-handed) into the pose: same rays, same world points.
        K = K.copy()
        K[1, 1] = -K[1, 1]
    first = o3d.io.read_image(frames[0][0])
    h, w = np.asarray(first).shape[:2]
    device = o3c.Device("CPU:0")
    K = o3c.Tensor(K, o3c.float64)
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=((1), (1), (3)), voxel_size=args.voxel, block_resolution=16, block_count=100000, device=device)
    times = []
    for color_path, depth_path, pose in frames:
        color = np.asarray(o3d.io.read_image(color_path))
        depth = np.asarray(o3d.io.read_image(depth_path)).copy()
        if scale == 1000.0:
            depth[depth == 65535] = 0
        if flip:
            # A negative fy maps row v to -(v - cy)/|fy|: flipping the image rows about cy gives
            # the same rays with a positive fy (cy = (h-1)/2 here, as in ICL-NUIM).
            depth = depth[::-1].copy()
            color = color[::-1].copy()
        depth = o3d.t.geometry.Image(o3c.Tensor(depth))
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(color)))
        extrinsic = o3c.Tensor(np.linalg.inv(pose), o3c.float64)
        t0 = time.perf_counter()
        blocks = grid.compute_unique_block_coordinates(depth, K, extrinsic, scale, args.max_depth, args.trunc_voxels)
        grid.integrate(blocks, depth, color, K, K, extrinsic, scale, args.max_depth, args.trunc_voxels)
        times.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    mesh = grid.extract_triangle_mesh(weight_threshold=args.weight_threshold).to_legacy()
    extract = (time.perf_counter() - t0) * 1000
    o3d.io.write_triangle_mesh(args.output, mesh, write_ascii=False)
    t = np.array(times)
    print(json.dumps({
        "sequence": args.sequence, "frames": len(frames), "voxel_m": args.voxel, "trunc_voxels": args.trunc_voxels, "weight_threshold": args.weight_threshold,
        "integrate_median_ms": float(np.median(t)), "integrate_p10_ms": float(np.percentile(t, 10)),
        "integrate_p90_ms": float(np.percentile(t, 90)), "extract_ms": extract,
        "vertices": len(mesh.vertices), "triangles": len(mesh.triangles), "open3d": o3d.__version__,
    }))


if __name__ == "__main__":
    main()
