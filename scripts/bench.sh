#!/usr/bin/env bash
# Set up and run every benchmark (bench/__main__.py) and write bench/RESULTS.md.
# Sizes via BENCH_DISPATCH / BENCH_AUDIENCE / BENCH_WIRE_DISPATCH; see bench/__main__.py.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
scripts/mongo-standin.sh --setup
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing wrk (Debian's package) for the HTTP benchmark..." >&2
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else
    echo "wrk is not installed and cannot be installed here: the HTTP rows will be skipped" >&2
  fi
fi
exec .venv/bin/python -m bench "$@"
