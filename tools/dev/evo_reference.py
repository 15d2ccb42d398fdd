#!/usr/bin/env python3
"""Reference trajectory errors from evo (https://github.com/MichaelGrupp/evo) for the Swift tests.

Dev only: `pip install evo`. The product and its tests never need it; the numbers this prints are
stored in Tests/PipelineTests/Fixtures/evo-reference.json and the Swift test compares
`semfuse evaluate`'s ATE and RPE with them.

It reproduces what `semfuse evaluate <7-Scenes folder> --trajectory <TUM file>` compares:
  * ground truth: the 7-Scenes `frame-NNNNNN.pose.txt` matrices (camera-to-world), timestamp =
    frame number. evo refuses matrices that are not orthonormal to ~1e-6, and 7-Scenes' are only
    orthonormal to ~2e-4, so each is turned into a unit quaternion with evo's own
    `transformations.quaternion_from_matrix` (the eigenvector method: the nearest rotation);
  * estimate: the TUM trajectory file, read with evo's TUM reader;
  * pairs: evo's timestamp association (max difference 0.01 s; the frame numbers match exactly);
  * ATE: `evo_ape` with SE(3) Umeyama alignment (no scale), translation part: RMSE, median, max;
  * RPE: `evo_rpe` with delta 1 frame, no alignment: translation RMSE (m) and rotation mean (deg).

Usage:
  python3 tools/dev/evo_reference.py ../shared/data/7scenes-redkitchen tracked.txt [--frames 0:500]
"""
import argparse
import copy
import glob
import json
import os
import sys

import numpy as np
from evo.core import metrics, sync
from evo.core.trajectory import PoseTrajectory3D
from evo.core.transformations import quaternion_from_matrix
from evo.tools import file_interface


def seven_scenes_ground_truth(folder, start, end):
    stamps, xyz, quats = [], [], []
    for path in sorted(glob.glob(os.path.join(folder, "frame-*.pose.txt"))):
        n = int(os.path.basename(path)[len("frame-"):].split(".")[0])
        if not start <= n < end:
            continue
        m = np.loadtxt(path).reshape(4, 4)
        stamps.append(float(n))
        xyz.append(m[:3, 3])
        quats.append(quaternion_from_matrix(m, isprecise=False))  # w, x, y, z
    return PoseTrajectory3D(positions_xyz=np.array(xyz), orientations_quat_wxyz=np.array(quats),
                            timestamps=np.array(stamps))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sequence")
    parser.add_argument("trajectory")
    parser.add_argument("--frames", default="0:1000000")
    args = parser.parse_args()
    start, end = (int(x) for x in args.frames.split(":"))

    truth = seven_scenes_ground_truth(args.sequence, start, end)
    estimate = file_interface.read_tum_trajectory_file(args.trajectory)
    truth, estimate = sync.associate_trajectories(truth, estimate, max_diff=0.01)

    aligned = copy.deepcopy(estimate)
    aligned.align(truth, correct_scale=False)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((truth, aligned))

    rpe_t = metrics.RPE(metrics.PoseRelation.translation_part, delta=1, delta_unit=metrics.Unit.frames, all_pairs=False)
    rpe_t.process_data((truth, estimate))
    rpe_r = metrics.RPE(metrics.PoseRelation.rotation_angle_deg, delta=1, delta_unit=metrics.Unit.frames, all_pairs=False)
    rpe_r.process_data((truth, estimate))
    # How much the ground truth itself turns per frame (RPE of the truth against a standing camera).
    still = PoseTrajectory3D(positions_xyz=np.zeros_like(truth.positions_xyz),
                             orientations_quat_wxyz=np.tile([1.0, 0, 0, 0], (truth.num_poses, 1)), timestamps=truth.timestamps)
    turn = metrics.RPE(metrics.PoseRelation.rotation_angle_deg, delta=1, delta_unit=metrics.Unit.frames, all_pairs=False)
    turn.process_data((truth, still))

    result = {
        "evo_version": __import__("evo").__version__,
        "frames": int(truth.num_poses),
        "ate_rmse_m": ape.get_statistic(metrics.StatisticsType.rmse),
        "ate_median_m": ape.get_statistic(metrics.StatisticsType.median),
        "ate_max_m": ape.get_statistic(metrics.StatisticsType.max),
        "rpe_pairs": int(len(rpe_r.error)),
        "rpe_translation_rmse_m": rpe_t.get_statistic(metrics.StatisticsType.rmse),
        "rpe_rotation_mean_deg": rpe_r.get_statistic(metrics.StatisticsType.mean),
        "ground_truth_turn_mean_deg": turn.get_statistic(metrics.StatisticsType.mean),
    }
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
