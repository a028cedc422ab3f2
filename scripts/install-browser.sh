#!/usr/bin/env bash
# Install Debian's Chromium for the Swagger UI browser test, when it is missing and we may.
# Never fatal: without it the browser test skips with its reason (or fails under REQUIRE_SERVICES=1).
set -uo pipefail
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0
[ "${SKIP_BROWSER_INSTALL:-0}" = 1 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "Chromium not found at $chromium and not root with apt-get: the browser test will skip." >&2
  exit 0
fi
echo "Installing Debian's chromium for the browser test (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null \
  || echo "Could not install chromium: the browser test will skip." >&2
exit 0
