#!/usr/bin/env bash
# Build the image and run it: tests/test_container.py::test_the_image_builds_and_delivers_a_campaign
# (web and worker containers, production mode, against the MongoDB stand-in, RabbitMQ and Redis).
#
# With Debian's podman, and no image registry: the base image (Debian bookworm, its Python 3.11 and
# venv) is made once by debootstrap from Debian's mirror and imported as localhost/crm-base:bookworm;
# the machine's CA bundle goes into it, so pip inside the build trusts what the host trusts. Where a
# registry is reachable, `docker build .` uses the official python:3.11-slim-bookworm instead.
# Seen on these machines (Debian 12, cgroups v1/v2 hybrid): crun refuses hybrid cgroups (runc works),
# and podman's default nofile/nproc limits are above what the sandbox allows (containers inherit the
# host's instead). Both settings are made here, for this run only.
set -euo pipefail
cd "$(dirname "$0")/.."
base=localhost/crm-base:bookworm
cache="${CONTAINER_CACHE:-/var/tmp/crm-container}"

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing ${missing[*]} (Debian packages)..." >&2
  apt-get install -y --no-install-recommends podman runc debootstrap uidmap >&2
fi

conf="$(mktemp)"
trap 'rm -f "$conf"' EXIT
printf '[containers]\ndefault_ulimits = []\n' > "$conf"
export CONTAINERS_CONF="$conf" PODMAN_RUNTIME=runc

if ! podman image exists "$base"; then
  echo "Making the base image $base with debootstrap (a few minutes, once)..." >&2
  rm -rf "$cache/rootfs" && mkdir -p "$cache"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$cache/rootfs" \
    http://deb.debian.org/debian >&2
  cp /etc/ssl/certs/ca-certificates.crt "$cache/rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$cache/rootfs" -c . | podman import - "$base" >&2
fi

scripts/setup.sh requirements-dev.txt >&2
scripts/services.sh
CONTAINER_SMOKE=1 CONTAINER_BASE_IMAGE="$base" exec .venv/bin/python -m pytest -q -p no:randomly \
  tests/test_container.py -k test_the_image_builds_and_delivers_a_campaign "$@"
