#!/usr/bin/env python3
"""How closely can a depth-only tracker agree with a 7-Scenes folder's ground truth?

Each frame's depth is registered (Open3D point-to-plane ICP, starting at its ground-truth pose)
to a point cloud fused from all the *other* selected frames with their ground-truth poses. The
registered poses are what the depth says given the ground-truth map; their ATE RMSE against the
ground truth (rigid alignment, the measure `semfuse bench tracking` reports) is a floor for
trackers scored against that ground truth. Dev-only (pip install open3d-cpu).

    python3 tools/dev/gt_depth_floor.py SEQ [--frames A:B]

--frames counts positions in the folder, as `semfuse --frames` does.
"""
import argparse
import os
import sys

import numpy as np
import open3d as o3d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gt_step_check import depth_cloud  # noqa: E402
from open3d_odometry import ate_rmse  # noqa: E402
from open3d_reference import select_frames, seven_scenes  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sequence")
    ap.add_argument("--frames", default=None, help="A:B, positions in the folder (default: all)")
    ap.add_argument("--voxel", type=float, default=0.01)
    args = ap.parse_args()
    frames, K, _ = seven_scenes(args.sequence)
    frames = select_frames(frames, args.frames)
    intrinsic = o3d.camera.PinholeCameraIntrinsic(640, 480, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    truth = [pose for _, _, pose in frames]
    world = [depth_cloud(d, intrinsic).transform(T).voxel_down_sample(args.voxel) for (_, d, _), T in zip(frames, truth)]
    registered = []
    for i, (_, depth, _) in enumerate(frames):
        others = o3d.geometry.PointCloud()
        for j, cloud in enumerate(world):
            if j != i:
                others += cloud
        others = others.voxel_down_sample(args.voxel)
        others.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.05, max_nn=30))
        r = o3d.pipelines.registration.registration_icp(
            depth_cloud(depth, intrinsic, stride=4), others, 0.03, truth[i],
            o3d.pipelines.registration.TransformationEstimationPointToPlane(),
            o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=50))
        registered.append(r.transformation)
    print(f"{len(frames)} frames: the poses the depth gives against the ground-truth map score "
          f"ATE RMSE {ate_rmse(registered, truth) * 1000:.1f} mm against the ground truth")


if __name__ == "__main__":
    main()
