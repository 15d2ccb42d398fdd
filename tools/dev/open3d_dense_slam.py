#!/usr/bin/env python3
"""Open3D's dense RGB-D SLAM (KinectFusion-style: a TSDF voxel-block model, each frame tracked
against the model's raycast by point-to-plane ICP) on a 7-Scenes folder: a frame-to-model peer
of `semfuse bench tracking` (issue 11). Dev-only (pip install open3d-cpu).

    python3 tools/dev/open3d_dense_slam.py SEQ [--frames A:B] [--voxel 0.01]

Starts from the first ground-truth pose and prints one JSON line: the ATE RMSE after a rigid
(SE(3)) alignment, the same measure `semfuse bench tracking` reports, and the wall time.
7-Scenes' own ground truth came from KinectFusion; this answers whether a TSDF model tracks
closer to it than our surfels (docs/results.md, "A tracking model that grows with the map").
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import open3d as o3d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from open3d_odometry import ate_rmse  # noqa: E402
from open3d_reference import select_frames, seven_scenes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sequence")
    parser.add_argument("--frames", default=None, help="start:end positions (end exclusive)")
    parser.add_argument("--voxel", type=float, default=0.01, help="TSDF voxel edge in metres")
    parser.add_argument("--depth-max", type=float, default=3.0, help="depth cut in metres (ElasticFusion's 3)")
    args = parser.parse_args()
    frames, K, scale = seven_scenes(args.sequence)
    frames = select_frames(frames, args.frames)
    device = o3d.core.Device("CPU:0")
    h, w = np.asarray(o3d.io.read_image(frames[0][0])).shape[:2]
    intrinsic = o3d.core.Tensor(K, o3d.core.Dtype.Float64)
    model = o3d.t.pipelines.slam.Model(args.voxel, 16, 60000, o3d.core.Tensor(np.eye(4)), device)
    live = o3d.t.pipelines.slam.Frame(h, w, intrinsic, device)
    raycast = o3d.t.pipelines.slam.Frame(h, w, intrinsic, device)
    first = frames[0][2]
    T = o3d.core.Tensor(np.eye(4))
    poses = []
    start = time.perf_counter()
    for i, (color_path, depth_path, _) in enumerate(frames):
        depth = np.asarray(o3d.io.read_image(depth_path)).astype(np.uint16)
        depth[depth == 65535] = 0
        live.set_data_from_image("depth", o3d.t.geometry.Image(o3d.core.Tensor(depth)))
        live.set_data_from_image("color", o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(np.asarray(o3d.io.read_image(color_path))))))
        if i > 0:
            result = model.track_frame_to_model(live, raycast, scale, args.depth_max, 0.07)
            T = T @ result.transformation
        model.update_frame_pose(i, T)
        model.integrate(live, scale, args.depth_max, 8.0)
        model.synthesize_model_frame(raycast, scale, 0.1, args.depth_max, 8.0, False)
        poses.append(first @ T.numpy())
    seconds = time.perf_counter() - start
    truth = [f[2] for f in frames]
    print(json.dumps({"sequence": os.path.basename(os.path.normpath(args.sequence)), "frames": len(poses), "voxel": args.voxel,
                      "ate_rmse_mm": 1000 * ate_rmse(poses, truth), "seconds": seconds}))


if __name__ == "__main__":
    main()
