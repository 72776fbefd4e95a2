#!/usr/bin/env bash
# Provisions the headless Chromium that the portal's browser test drives (playwright-core does not
# download browsers here: that needs internet access CI does not have). Debian's `chromium` package
# comes through the package registry. Idempotent and instant when a Chromium is already there.
# CHROMIUM_PATH overrides everything; the chosen program is linked as .tools/bin/chromium.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

log() { printf '[provision] %s\n' "$*" >&2; }
works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --headless=new --version >/dev/null 2>&1; }

chromium="${CHROMIUM_PATH:-}"
if [ -z "$chromium" ]; then
  chromium=$(command -v chromium || true)
fi
if ! works "$chromium" && [ -z "${CHROMIUM_PATH:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium package with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
    chromium=$(command -v chromium || true)
  fi
fi
if ! works "$chromium"; then
  log "could not provision Chromium${chromium:+ ($chromium does not run)}."
  log "Fix: as root, apt-get install chromium (Debian/Ubuntu), or install any Chromium/Chrome and set CHROMIUM_PATH."
  exit 1
fi
ln -sfn "$chromium" "$bin/chromium"
log "chromium -> $chromium"
