#!/usr/bin/env python3
"""Would a pose graph over keyframes remove the tracked trajectory's drift? (issue 11, dev probe)

Takes a TUM trajectory written by `semfuse reconstruct --poses track` on a 7-Scenes folder,
keyframes every K frames, registers every pair of keyframes that look at the same place
(camera centres within 0.8 m, viewing directions within 45 degrees) with Open3D's
point-to-plane ICP from the tracked relative pose, and optimises an Open3D pose graph: odometry
edges are the tracked relative poses (their information from the ICP correspondences, times
$OW, default 10), loop edges the registrations with fitness above 0.4. Poses between keyframes
take their neighbours' corrections, interpolated. Prints the ATE RMSE (mm) before and after.
Dev-only (pip install open3d-cpu scipy).

    python3 tools/dev/pose_graph_probe.py SEQ TRAJECTORY K [MAX_DISTANCE_M]

The fourteenth session's result (docs/results.md): on kitchen frames 0-499 the graph made the
trajectory worse (28.4 mm → 35.3 mm), so it was not built.
"""
import os
import sys

import numpy as np
import open3d as o3d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gt_step_check import depth_cloud
from open3d_odometry import ate_rmse
from open3d_reference import seven_scenes
from scipy.spatial.transform import Rotation as Rot, Slerp

seq, traj, K_every = sys.argv[1], sys.argv[2], int(sys.argv[3])
maxdist = float(sys.argv[4]) if len(sys.argv) > 4 else 0.03
frames, K, _ = seven_scenes(seq)
intr = o3d.camera.PinholeCameraIntrinsic(640, 480, K[0,0], K[1,1], K[0,2], K[1,2])
rows = np.loadtxt(traj, comments='#')
frames = frames[:len(rows)]  # the trajectory of frames 0..n-1 (run with --frames 0:n)
def T_of(r):
    T = np.eye(4); T[:3,:3] = Rot.from_quat(r[4:8]).as_matrix(); T[:3,3] = r[1:4]; return T
track = [T_of(r) for r in rows]
truth = [p for _,_,p in frames]
print('tracked ATE', ate_rmse(track, truth)*1000)
keys = list(range(0, len(track), K_every))
clouds = {}
for k in keys:
    c = depth_cloud(frames[k][1], intr, stride=2).voxel_down_sample(0.01)
    c.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.05, max_nn=30))
    clouds[k] = c
reg = o3d.pipelines.registration
pg = reg.PoseGraph()
for k in keys: pg.nodes.append(reg.PoseGraphNode(track[k]))
def icp(i, j):
    # transform taking cloud j into frame i: T_i^-1 T_j
    init = np.linalg.inv(track[i]) @ track[j]
    r = reg.registration_icp(clouds[j], clouds[i], maxdist, init, reg.TransformationEstimationPointToPlane(),
                             reg.ICPConvergenceCriteria(max_iteration=30))
    info = reg.get_information_matrix_from_point_clouds(clouds[j], clouds[i], maxdist, r.transformation)
    return r, info, init
nloop = 0
for a in range(len(keys)):
    for b in range(a+1, len(keys)):
        i, j = keys[a], keys[b]
        Ti, Tj = track[i], track[j]
        dist = np.linalg.norm(Ti[:3,3]-Tj[:3,3]); cosang = Ti[:3,2] @ Tj[:3,2]
        if b == a+1:
            r, info, init = icp(i, j)
            pg.edges.append(reg.PoseGraphEdge(b, a, init, info * float(os.environ.get("OW","10")), uncertain=False))
        elif dist < 0.8 and cosang > 0.7:
            r, info, init = icp(i, j)
            if r.fitness > 0.4:
                pg.edges.append(reg.PoseGraphEdge(b, a, r.transformation, info, uncertain=True)); nloop += 1
print('keys', len(keys), 'loop edges', nloop)
opt = reg.GlobalOptimizationOption(max_correspondence_distance=maxdist, edge_prune_threshold=0.25, reference_node=0)
reg.global_optimization(pg, reg.GlobalOptimizationLevenbergMarquardt(), reg.GlobalOptimizationConvergenceCriteria(), opt)
# corrections per key, interpolate
corr = [pg.nodes[a].pose @ np.linalg.inv(track[k]) for a, k in enumerate(keys)]
out = []
for f in range(len(track)):
    a = min(f // K_every, len(keys)-1); b = min(a+1, len(keys)-1)
    t = 0 if a == b else (f - keys[a]) / (keys[b]-keys[a])
    Ca, Cb = corr[a], corr[b]
    R = Slerp([0,1], Rot.from_matrix([Ca[:3,:3], Cb[:3,:3]]))(t).as_matrix()
    C = np.eye(4); C[:3,:3] = R; C[:3,3] = (1-t)*Ca[:3,3] + t*Cb[:3,3]
    out.append(C @ track[f])
print('refined ATE', ate_rmse(out, truth)*1000, 'keys-only', ate_rmse([pg.nodes[a].pose for a in range(len(keys))], [truth[k] for k in keys])*1000)
