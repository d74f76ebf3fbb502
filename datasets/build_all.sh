#!/usr/bin/env bash
# Regenerate the five shipped improvement datasets, bit for bit (see datasets/README.md),
# then check them against datasets/SHA256SUMS.
# Usage: bash datasets/build_all.sh [extra icpi collect options, e.g. --workers 2]
# Run from anywhere; paths are resolved from the repository root, because the recorded
# command line (in each meta.json) names the output as datasets/<task>.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
for task in slide slide-gc rope-swing rope-swing-gc ball-roll-gc; do
  "$PYTHON" -m icpi.cli.main collect --task "$task" --out "datasets/$task" --size 300 --seed 0 "$@"
done
# A mismatch means other package versions (see "versions" in meta.json) or a changed task.
sha256sum -c datasets/SHA256SUMS
