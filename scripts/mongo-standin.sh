#!/usr/bin/env bash
# Serve a MongoDB stand-in (mongoeco, over the real wire protocol) on 127.0.0.1 until stopped.
#   scripts/mongo-standin.sh                  foreground, port $MONGO_STANDIN_PORT (27017), data in memory
#   scripts/mongo-standin.sh --data crm.db    keep data in a SQLite file (survives restarts and kill -9)
#   scripts/mongo-standin.sh --setup          only create its venv (Python >= 3.13, pinned packages)
# Then: MONGO_URI="mongodb://127.0.0.1:27017/crm?directConnection=true"
# It is a stand-in for tests and local runs, not a production database (README: "Running it for real").
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv-mongo"
requirements="requirements-mongo-standin.txt"

find_python() {  # a Python >= 3.13: $MONGO_STANDIN_PYTHON, python3.13+ on PATH, or pyenv's
  local candidate
  for candidate in "${MONGO_STANDIN_PYTHON:-}" python3.15 python3.14 python3.13 \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[3-9]*/bin/python3 2>/dev/null | sort -rV); do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  python=$(find_python) || {
    echo "The MongoDB stand-in needs Python 3.13 or newer (mongoeco requires it); none was found." >&2
    echo "Install one (e.g. 'pyenv install 3.13') or set MONGO_STANDIN_PYTHON=/path/to/python3.13." >&2
    exit 1
  }
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi
if [ "${1:-}" = "--setup" ]; then
  exit 0
fi
exec "$venv/bin/python" scripts/mongo_standin.py --port "${MONGO_STANDIN_PORT:-27017}" "$@"
