#!/usr/bin/env bash
# Install the Node tools the test suite runs (package.json, pinned in package-lock.json: the Redocly
# CLI that lints the OpenAPI document) into ./node_modules; again only when the lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null; then
  echo "npm is not installed: the OpenAPI lint cannot run (install Node.js 20+)" >&2
  exit 1
fi
stamp=node_modules/.installed-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
