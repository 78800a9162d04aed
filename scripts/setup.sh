#!/usr/bin/env bash
# Set up .venv with everything the app (and, with --dev, the tests) need. Idempotent.
# torch is installed FIRST and pinned: pip then takes the CPU wheel on disk; unpinned it would
# pull several GB of CUDA packages as a dependency of sentence-transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt
else
  .venv/bin/python -m pip install -q -r requirements.txt
fi
