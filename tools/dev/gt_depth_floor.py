#!/usr/bin/env python3
"""How closely can any depth-only tracker agree with a sequence's ground truth?

Each frame's depth is registered (Open3D point-to-plane ICP, starting at its ground-truth pose)
to a point cloud fused from all the *other* frames of the range with their ground-truth poses.
The registered poses are what the depth says given the ground-truth map; their ATE RMSE against
the ground truth (SE(3)-aligned, as evo does) is a floor for trackers scored against that ground
truth. Needs open3d (pip install open3d-cpu).

Usage: python3 tools/dev/gt_depth_floor.py SEQ --frames 150:200 [--fx 585]
"""
import argparse
import numpy as np
import open3d as o3d

ap = argparse.ArgumentParser()
ap.add_argument("sequence")
ap.add_argument("--frames", default="0:50")
ap.add_argument("--fx", type=float, default=585.0)
ap.add_argument("--voxel", type=float, default=0.01)
args = ap.parse_args()
a, b = (int(v) for v in args.frames.split(":"))
S = args.sequence
intr = o3d.camera.PinholeCameraIntrinsic(640, 480, args.fx, args.fx, 320, 240)

def cloud(i, stride=2):
    d = np.asarray(o3d.io.read_image(f"{S}/frame-{i:06d}.depth.png")).astype(np.uint16)
    d[d == 65535] = 0
    return o3d.geometry.PointCloud.create_from_depth_image(o3d.geometry.Image(d), intr, depth_scale=1000,
                                                           depth_trunc=3.0, stride=stride)

frames = list(range(a, b))
gt = {i: np.loadtxt(f"{S}/frame-{i:06d}.pose.txt") for i in frames}
world = {i: cloud(i).transform(gt[i]).voxel_down_sample(args.voxel) for i in frames}
est = []
for i in frames:
    others = o3d.geometry.PointCloud()
    for j in frames:
        if j != i:
            others += world[j]
    others = others.voxel_down_sample(args.voxel)
    others.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.05, max_nn=30))
    live = cloud(i, stride=4)
    r = o3d.pipelines.registration.registration_icp(live, others, 0.03, gt[i],
            o3d.pipelines.registration.TransformationEstimationPointToPlane(),
            o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=50))
    est.append(r.transformation)

P = np.array([T[:3, 3] for T in est]); G = np.array([gt[i][:3, 3] for i in frames])
mu1, mu2 = P.mean(0), G.mean(0)
U, _, Vt = np.linalg.svd((P - mu1).T @ (G - mu2))
D = np.eye(3); D[2, 2] = np.sign(np.linalg.det(Vt.T @ U.T))
R = Vt.T @ D @ U.T
E = np.linalg.norm(P @ R.T + (mu2 - R @ mu1) - G, axis=1)
print(f"frames {a}-{b - 1}: poses the depth gives against the ground-truth map score ATE RMSE "
      f"{np.sqrt((E ** 2).mean()) * 1000:.1f} mm (median {np.median(E) * 1000:.1f}, max {E.max() * 1000:.1f}) "
      f"against the ground truth; unaligned median offset {np.median(np.linalg.norm(P - G, axis=1)) * 1000:.1f} mm")
