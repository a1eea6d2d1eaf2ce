#!/usr/bin/env bash
# Re-make the pinned versions that CI and the images install (constraints/*.txt), on purpose:
# run this when a dependency in pyproject.toml changes or to take newer releases, then run the
# suite and commit the result. `pip install -e ".[cpu,test]"` without these files still works;
# they only make what CI and the images install reproducible.
#   bash constraints/lock.sh          (needs `uv`: pip install uv)
set -euo pipefail
cd "$(dirname "$0")/.."
python=3.11        # the images' Python (python:3.11-slim, Debian bookworm) and CI's
platform=x86_64-manylinux_2_28
lock() {
  local out=$1; shift
  uv pip compile pyproject.toml "$@" --python-version "$python" --python-platform "$platform" \
    --no-header --annotation-style line -q -o "constraints/$out"
  sed -i "1i # Made by constraints/lock.sh (uv pip compile pyproject.toml $*); do not edit by hand." "constraints/$out"
}
lock cpu.txt --extra cpu --extra test --extra s3
lock gpu.txt --extra gpu --extra s3
# keras-hub's own dependencies pull the full tensorflow wheel (through tensorflow-text): on a CPU
# install its packages go in without them (pip install --no-deps), so only they are pinned here.
lock clip.txt --extra clip --no-deps
