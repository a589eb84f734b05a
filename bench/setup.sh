#!/usr/bin/env bash
# Prepare this machine for the benchmarks: wrk (Debian package) if missing, and the project's
# virtualenv with the dev extras (httpx, websockets) plus the profilers used in README.md.
# Without wrk the board benchmarks fall back to an httpx load loop (lower figures).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq wrk
  else
    echo "wrk not found and no apt-get: the board benchmarks will use the httpx fallback" >&2
  fi
fi
scripts/bootstrap
.venv/bin/python -m pip install -q py-spy pyinstrument || \
  echo "py-spy/pyinstrument not installed: profiling commands in bench/README.md need them" >&2
command -v wrk >/dev/null 2>&1 && wrk -v 2>&1 | head -1 || true
