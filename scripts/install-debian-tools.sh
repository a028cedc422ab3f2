#!/usr/bin/env bash
# Install the Debian programs some tests drive, when they are missing and we may (root with apt-get):
# Chromium for the Swagger UI browser test, podman for `podman-compose config` on compose.yaml.
# Never fatal: without one, its test skips with the reason (the browser test fails under
# REQUIRE_SERVICES=1, as .ci/run sets).
set -uo pipefail
[ "${SKIP_DEBIAN_TOOLS:-${SKIP_BROWSER_INSTALL:-0}}" = 1 ] && exit 0
wanted=()
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || wanted+=(chromium)
command -v podman >/dev/null || wanted+=(podman)
[ "${#wanted[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "Missing ${wanted[*]} and not root with apt-get: the tests that use them will skip." >&2
  exit 0
fi
echo "Installing Debian's ${wanted[*]} for the tests (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq "${wanted[@]}" >/dev/null \
  || echo "Could not install ${wanted[*]}: the tests that use them will skip." >&2
exit 0
