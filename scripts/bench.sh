#!/usr/bin/env bash
# Set up and run the benchmarks (bench/__main__.py); sizes via BENCH_DISPATCH / BENCH_AUDIENCE.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
scripts/mongo-standin.sh --setup
exec .venv/bin/python -m bench "$@"
