#!/usr/bin/env python3
"""Open3D's frame-to-frame RGB-D odometry on a 7-Scenes folder: the CPU tracking peer of
`semfuse bench tracking` (issue 12). Dev-only (pip install open3d-cpu).

    python3 tools/dev/open3d_odometry.py SEQ [--frames A:B] [--width 640]

Chains `compute_rgbd_odometry` (hybrid photometric + geometric Jacobian, Open3D's default
options) from the first ground-truth pose, frame i+1 against frame i, and prints one JSON line:
the odometry time per frame (median, p10, p90; image decoding and RGBDImage creation not timed),
the failures, and the ATE RMSE against the ground truth after a rigid (SE(3)) alignment, the
same measure `semfuse bench tracking` reports. `--width 320` halves the images (and intrinsics)
first, for the half-resolution row.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import open3d as o3d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from open3d_reference import select_frames, seven_scenes  # noqa: E402
from trajectory_alignment import aligned_errors  # noqa: E402


def ate_rmse(estimated, truth):
    """RMSE of the translations after the least-squares rigid alignment (Umeyama, no scale)."""
    errors = aligned_errors([p[:3, 3] for p in estimated], [p[:3, 3] for p in truth])
    return float(np.sqrt((errors ** 2).mean()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sequence")
    parser.add_argument("--frames", default=None, help="start:end positions (end exclusive)")
    parser.add_argument("--width", type=int, default=640, help="320 halves the images (and intrinsics) first; anything else keeps them")
    args = parser.parse_args()
    frames, K, scale = seven_scenes(args.sequence)
    frames = select_frames(frames, args.frames)
    half = args.width == 320
    if half:
        K = K.copy()
        K[:2] *= 0.5
        K[0, 2] -= 0.25  # pixel centres: (x + 0.5) / 2 - 0.5
        K[1, 2] -= 0.25
    # The image size from the first frame (7-Scenes: 640x480; other folders in its layout, such
    # as `semfuse convert --format 7scenes` output, may differ).
    h0, w0 = np.asarray(o3d.io.read_image(frames[0][0])).shape[:2]
    w, h = (w0 // 2, h0 // 2) if half else (w0, h0)
    intrinsic = o3d.camera.PinholeCameraIntrinsic(w, h, K[0, 0], K[1, 1], K[0, 2], K[1, 2])

    def load(color_path, depth_path):
        color = np.asarray(o3d.io.read_image(color_path))
        depth = np.asarray(o3d.io.read_image(depth_path)).astype(np.uint16)
        depth[depth == 65535] = 0
        if half:
            color = np.ascontiguousarray(color[::2, ::2])
            depth = np.ascontiguousarray(depth[::2, ::2])
        return o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(color), o3d.geometry.Image(depth), depth_scale=scale, depth_trunc=3.0,
            convert_rgb_to_intensity=True)

    option = o3d.pipelines.odometry.OdometryOption()
    jacobian = o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm()
    poses = [frames[0][2]]
    times, failures = [], 0
    previous = load(frames[0][0], frames[0][1])
    for color_path, depth_path, _ in frames[1:]:
        current = load(color_path, depth_path)
        t0 = time.perf_counter()
        ok, T, _ = o3d.pipelines.odometry.compute_rgbd_odometry(current, previous, intrinsic, np.eye(4), jacobian, option)
        times.append((time.perf_counter() - t0) * 1000)
        if not ok:
            failures += 1
            T = np.eye(4)
        poses.append(poses[-1] @ T)
        previous = current
    t = np.array(times)
    print(json.dumps({
        "sequence": args.sequence, "frames": len(frames), "width": w, "height": h,
        "odometry_median_ms": float(np.median(t)), "odometry_p10_ms": float(np.percentile(t, 10)),
        "odometry_p90_ms": float(np.percentile(t, 90)), "failures": failures,
        "ate_rmse_mm": 1000 * ate_rmse(poses, [f[2] for f in frames]), "open3d": o3d.__version__,
    }))


if __name__ == "__main__":
    main()
