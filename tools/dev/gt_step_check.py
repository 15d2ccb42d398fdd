#!/usr/bin/env python3
"""Checks a 7-Scenes folder's ground-truth poses against its own depth, one frame step at a time.

For every pair of consecutive frames, the ground truth's relative motion and Open3D's
point-to-plane ICP (started from the ground truth's motion) are scored by how well they align
the two depth frames (fitness within 2 cm). Steps where the ground truth disagrees with the depth
(more than --jump mm from where ICP converges, with a fitness lower by more than --fitness-drop)
are listed. With --corrected OUT, a TUM trajectory is written that chains the ground truth's
motions but takes ICP's at those steps, and the ATE of the official ground truth against it is
printed: a reference for telling tracking error from ground-truth error. Dev-only (pip install
open3d-cpu scipy).

    python3 tools/dev/gt_step_check.py SEQ [--frames A:B] [--corrected gtfix.txt]

--frames counts positions in the folder, as `semfuse --frames` does.
"""
import argparse
import os
import sys

import numpy as np
import open3d as o3d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from open3d_odometry import ate_rmse  # noqa: E402
from open3d_reference import select_frames, seven_scenes  # noqa: E402


def depth_cloud(path, intrinsic, stride=2):
    d = np.asarray(o3d.io.read_image(path)).astype(np.uint16)
    d[d == 65535] = 0
    return o3d.geometry.PointCloud.create_from_depth_image(o3d.geometry.Image(d), intrinsic, depth_scale=1000,
                                                           depth_trunc=3.0, stride=stride)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sequence")
    ap.add_argument("--frames", default=None, help="A:B, positions in the folder (default: all)")
    ap.add_argument("--jump", type=float, default=15.0)
    ap.add_argument("--fitness-drop", type=float, default=0.03)
    ap.add_argument("--corrected")
    args = ap.parse_args()
    frames, K, _ = seven_scenes(args.sequence)
    frames = select_frames(frames, args.frames)
    intrinsic = o3d.camera.PinholeCameraIntrinsic(640, 480, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    poses = [pose for _, _, pose in frames]
    fixed = [poses[0]]
    prev = depth_cloud(frames[0][1], intrinsic)
    prev.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.05, max_nn=30))
    flagged = []
    for k in range(1, len(frames)):
        cur = depth_cloud(frames[k][1], intrinsic)
        cur.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.05, max_nn=30))
        rel_gt = np.linalg.inv(poses[k - 1]) @ poses[k]
        icp = o3d.pipelines.registration.registration_icp(
            cur, prev, 0.02, rel_gt, o3d.pipelines.registration.TransformationEstimationPointToPlane())
        gt_fit = o3d.pipelines.registration.evaluate_registration(cur, prev, 0.02, rel_gt).fitness
        gap = np.linalg.norm(rel_gt[:3, 3] - icp.transformation[:3, 3]) * 1000
        rel = rel_gt
        if gap > args.jump and icp.fitness - gt_fit > args.fitness_drop:
            flagged.append((os.path.basename(frames[k][1]), gap, gt_fit, icp.fitness))
            rel = icp.transformation
        fixed.append(fixed[-1] @ rel)
        prev = cur
    print(f"{len(flagged)} of {len(frames) - 1} steps where the ground truth disagrees with the depth:")
    for name, gap, gf, icf in flagged:
        print(f"  {name}: ground truth {gap:.1f} mm from ICP's motion; fitness {gf:.3f} against ICP's {icf:.3f}")
    if args.corrected:
        from scipy.spatial.transform import Rotation
        with open(args.corrected, "w") as out:
            for k, T in enumerate(fixed):
                q = Rotation.from_matrix(T[:3, :3]).as_quat()
                out.write(f"{k} {T[0,3]:.6f} {T[1,3]:.6f} {T[2,3]:.6f} {q[0]:.8f} {q[1]:.8f} {q[2]:.8f} {q[3]:.8f}\n")
        print(f"wrote {args.corrected}; the official ground truth against it: ATE RMSE {ate_rmse(poses, fixed) * 1000:.1f} mm")


if __name__ == "__main__":
    main()
