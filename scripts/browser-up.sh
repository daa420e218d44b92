#!/usr/bin/env bash
# What the studio's browser tests drive: Debian's headless Chromium, and axe-core (from
# the npm registry npm is configured with) for their accessibility pass.
#
#   scripts/browser-up.sh   install what is missing; prints
#                           `export MLFORM_CHROMIUM=... MLFORM_AXE=...` on stdout
#                           (all else on stderr)
#
# Typical use:   eval "$(scripts/browser-up.sh)"
#
# Idempotent and safe to run twice (a lock serialises runs).
#
# Settings (environment):
#   MLFORM_CACHE   where axe-core is kept, and the lock   (/var/cache/mlform)
set -euo pipefail

CACHE=${MLFORM_CACHE:-/var/cache/mlform}
AXE_VERSION=4.14.1
AXE_DIR=$CACHE/axe-core-$AXE_VERSION

say() { printf 'browser-up: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

mkdir -p "$CACHE"
exec 9>"$CACHE/browser-up.lock"
flock 9

if ! command -v chromium >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "chromium is missing and installing it needs root"
  say "installing chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update && apt-get install -y chromium; } > "$CACHE/apt-chromium.log" 2>&1; then
    tail -n 25 "$CACHE/apt-chromium.log" | sed 's/^/    /' >&2
    die "apt-get install chromium failed (full log: $CACHE/apt-chromium.log)"
  fi
fi

if [ ! -s "$AXE_DIR/axe.min.js" ]; then
  command -v npm >/dev/null 2>&1 || die "npm is missing: axe-core comes from the npm registry"
  say "fetching axe-core $AXE_VERSION with npm"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null) ||
    die "npm pack axe-core@$AXE_VERSION failed"
  tar -xzf "$work"/axe-core-*.tgz -C "$work"
  mkdir -p "$AXE_DIR"
  cp "$work/package/axe.min.js" "$work/package/LICENSE" "$AXE_DIR/" 2>/dev/null ||
    cp "$work/package/axe.min.js" "$AXE_DIR/"
fi

echo "export MLFORM_CHROMIUM=$(command -v chromium) MLFORM_AXE=$AXE_DIR/axe.min.js"
