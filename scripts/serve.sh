#!/usr/bin/env bash
# Set up and start the API on $PORT (5000): one gunicorn process with threads, so the embedded
# in-memory database (used when MONGO_URI is unset) is shared by every request.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
if [ -f .env ]; then set -a; . ./.env; set +a; fi
exec .venv/bin/gunicorn wsgi:app \
  --bind "${HOST:-127.0.0.1}:${PORT:-5000}" \
  --workers 1 --threads "${THREADS:-8}" \
  --no-control-socket "$@"
