#!/usr/bin/env bash
# Issue #20 in one command: builds the peers' virtual environments (bench/peers/.venv-*), makes the
# video sets (bench/out/peers-data), runs DeepfakeBench-style, DFDC-winner-style and our ingest back to
# back on each set and writes the JSON. Extra arguments go to bench/peers/run.py (see its --help).
#   bash bench/peers/run.sh docs/results/peers.json [--rounds 2] [--sets 944x500:15:30:h264 ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v ffmpeg >/dev/null || { echo "the H.264 sets need ffmpeg: apt-get install -y ffmpeg" >&2; exit 2; }
export PYTHONPATH="$PWD"
out="${1:-docs/results/peers.json}"
shift || true
exec python bench/peers/run.py --out "$out" "$@"
