#!/usr/bin/env bash
# One command from a fresh clone to a semantic PLY point cloud and mesh: installs what is missing, builds in release,
# and reconstructs the bundled synthetic room with a simulated per-frame segmenter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product semfuse
.build/release/semfuse reconstruct Sequences/synthetic-room --labels simulated \
  -o Output/synthetic-room.ply --trajectory Output/synthetic-room.trajectory.txt \
  --mesh Output/synthetic-room.mesh.ply "$@"
