#!/usr/bin/env python3
"""Checks a sequence's ground-truth poses against its own depth, one frame step at a time.

For every pair of consecutive frames, the ground truth's relative motion and Open3D's
point-to-plane ICP (started from the ground truth's motion) are scored by how well they align
the two depth frames (fitness and inlier RMSE within 2 cm). Steps where the ground truth
disagrees with the depth (it moves more than --jump mm away from where ICP converges, and its
fitness is clearly lower) are listed. With --corrected OUT, a TUM trajectory is written that
chains the ground-truth motions but uses ICP's motion at those steps: a reference for telling
tracking error from ground-truth error. Needs open3d (pip install open3d-cpu).

Usage: python3 tools/dev/gt_step_check.py SEQ --frames 0:500 [--corrected gt-fixed.txt]
"""
import argparse, glob, os
import numpy as np
import open3d as o3d

ap = argparse.ArgumentParser()
ap.add_argument("sequence")
ap.add_argument("--frames", default="0:500")
ap.add_argument("--jump", type=float, default=15.0, help="mm between ground truth and ICP that counts as a disagreement")
ap.add_argument("--fitness-drop", type=float, default=0.03)
ap.add_argument("--corrected")
ap.add_argument("--fx", type=float, default=585.0)
args = ap.parse_args()
a, b = (int(v) for v in args.frames.split(":"))
S = args.sequence
intr = o3d.camera.PinholeCameraIntrinsic(640, 480, args.fx, args.fx, 320, 240)

def cloud(i):
    d = np.asarray(o3d.io.read_image(f"{S}/frame-{i:06d}.depth.png")).astype(np.uint16)
    d[d == 65535] = 0
    p = o3d.geometry.PointCloud.create_from_depth_image(o3d.geometry.Image(d), intr, depth_scale=1000, depth_trunc=3.0, stride=2)
    p.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.05, max_nn=30))
    return p

poses = [np.loadtxt(f"{S}/frame-{i:06d}.pose.txt") for i in range(a, b)]
fixed = [poses[0]]
prev = cloud(a)
flagged = []
for k in range(1, b - a):
    cur = cloud(a + k)
    rel_gt = np.linalg.inv(poses[k - 1]) @ poses[k]
    icp = o3d.pipelines.registration.registration_icp(cur, prev, 0.02, rel_gt,
            o3d.pipelines.registration.TransformationEstimationPointToPlane())
    g = o3d.pipelines.registration.evaluate_registration(cur, prev, 0.02, rel_gt)
    gap = np.linalg.norm(rel_gt[:3, 3] - icp.transformation[:3, 3]) * 1000
    rel = rel_gt
    if gap > args.jump and icp.fitness - g.fitness > args.fitness_drop:
        flagged.append((a + k, gap, g.fitness, icp.fitness))
        rel = icp.transformation
    fixed.append(fixed[-1] @ rel)
    prev = cur

print(f"{len(flagged)} of {b - a - 1} steps where the ground truth disagrees with the depth:")
for f, gap, gf, icf in flagged:
    print(f"  frame {f}: ground truth {gap:.1f} mm from ICP's motion; fitness {gf:.3f} against ICP's {icf:.3f}")
if args.corrected:
    from scipy.spatial.transform import Rotation
    with open(args.corrected, "w") as out:
        for k, T in enumerate(fixed):
            q = Rotation.from_matrix(T[:3, :3]).as_quat()
            out.write(f"{a + k} {T[0,3]:.6f} {T[1,3]:.6f} {T[2,3]:.6f} {q[0]:.8f} {q[1]:.8f} {q[2]:.8f} {q[3]:.8f}\n")
    print(f"wrote {args.corrected}")
