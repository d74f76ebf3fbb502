#!/usr/bin/env bash
# Regenerate the five shipped improvement datasets, bit for bit (see datasets/README.md).
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
sha256sum datasets/*/examples.parquet datasets/*/meta.json
