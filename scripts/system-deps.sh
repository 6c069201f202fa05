#!/usr/bin/env bash
# Debian packages the tests and benchmarks use, installed only when missing.
# Run by `make test` / `make bench`; safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail

want=()
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
if [ "${1:-}" = "--bench" ]; then
  command -v nginx >/dev/null 2>&1 || want+=(nginx-light)
  command -v h2load >/dev/null 2>&1 || want+=(nghttp2-client)
fi
[ ${#want[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "system-deps: need root to install: ${want[*]} (apt-get install -y ${want[*]})" >&2
    exit 1
  fi
fi
echo "system-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || true
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# Debian starts services on install; the tests run their own private instances.
for svc in redis-server nginx; do
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  $sudo service "$svc" stop >/dev/null 2>&1 || true
done
