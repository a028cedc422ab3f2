#!/usr/bin/env bash
# Create .venv (if needed) and install the given requirements' hash-pinned lock (requirements.lock,
# requirements-dev.lock) into it. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements.txt}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Python 3.11 or newer is needed as '$python' (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    # Debian ships venv separately; install it when we are allowed to, else say what to do.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "Installing Debian's python3-venv (needed to create .venv)..." >&2
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$python" -m venv .venv
    else
      echo "'$python -m venv' failed: on Debian/Ubuntu run 'sudo apt-get install python3-venv'." >&2
      exit 1
    fi
  fi
fi
# Install from the hash-pinned lock next to the requirements file (every package, transitive ones
# included, with its SHA-256: a tampered or substituted download fails the install).
lock="${requirements%.txt}.lock"
stamp=".venv/.installed-$(basename "$lock")"
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
  touch "$stamp"
fi
