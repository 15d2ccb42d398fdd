"""Per-frame position errors of a trajectory after the least-squares rigid alignment to the
ground truth (Umeyama without scale, as evo's `--align`). Shared by the dev scripts that score
trajectories; development only."""
import numpy as np


def aligned_errors(estimated, truth):
    """Distances (same unit as the inputs) between each estimated position, rigidly aligned to
    `truth` as a whole, and its true position. Both are N x 3 arrays of positions."""
    a, b = np.asarray(estimated, dtype=float), np.asarray(truth, dtype=float)
    ma, mb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((b - mb).T @ (a - ma))
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, 1, d]) @ vt
    return np.linalg.norm((rotation @ (a - ma).T).T + mb - b, axis=1)
