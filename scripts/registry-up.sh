#!/usr/bin/env bash
# Bring up a local container registry (Debian's docker-registry) for push tests.
#
#   scripts/registry-up.sh           install if missing, start it if not answering; prints
#                                    `export MLFORM_TEST_REGISTRY=...` on stdout (all else
#                                    on stderr)
#   scripts/registry-up.sh --status  exit 0 if the registry answers
#   scripts/registry-up.sh --stop    stop the registry this script started
#
# Typical use:   eval "$(scripts/docker-up.sh)"; eval "$(scripts/registry-up.sh)"
#
# Idempotent and safe to run twice (a lock serialises runs). The registry listens on
# 127.0.0.1 only, without TLS or auth: Docker pushes to 127.0.0.0/8 over plain HTTP
# without being told to, and nothing outside this machine can reach it.
#
# Settings (environment):
#   MLFORM_REGISTRY_ADDR     host:port to listen on       (127.0.0.1:5000)
#   MLFORM_REGISTRY_ROOT     storage folder               (/var/lib/mlform-registry)
#   MLFORM_REGISTRY_LOG      log file                     (/var/log/mlform/registry.log)
#   MLFORM_REGISTRY_TIMEOUT  seconds to wait for it       (30)
#   MLFORM_CACHE             lock file folder             (/var/cache/mlform)
set -euo pipefail

ADDR=${MLFORM_REGISTRY_ADDR:-127.0.0.1:5000}
ROOT=${MLFORM_REGISTRY_ROOT:-/var/lib/mlform-registry}
LOG=${MLFORM_REGISTRY_LOG:-/var/log/mlform/registry.log}
TIMEOUT=${MLFORM_REGISTRY_TIMEOUT:-30}
CACHE=${MLFORM_CACHE:-/var/cache/mlform}
CONFIG=$ROOT.yml
PIDFILE=$ROOT.pid
BINARY=/usr/bin/docker-registry

say() { printf 'registry-up: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

answers() { curl -fsS --max-time 5 "http://$ADDR/v2/" >/dev/null 2>&1; }

registry_pid() {  # pid in our pidfile, if it is a live docker-registry
  local pid state
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ] && [ "$state" != X ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ] || return 1
  echo "$pid"
}

install_package() {
  [ -x "$BINARY" ] && return
  [ "$(id -u)" = 0 ] || die "docker-registry is missing and installing it needs root"
  say "installing docker-registry from Debian's packages"
  mkdir -p "$CACHE"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update && apt-get install -y docker-registry; } > "$CACHE/apt-registry.log" 2>&1; then
    tail -n 25 "$CACHE/apt-registry.log" | sed 's/^/    /' >&2
    die "apt-get install docker-registry failed (full log: $CACHE/apt-registry.log)"
  fi
}

stop_registry() {
  local pid
  pid=$(registry_pid) || { say "no registry of ours is running"; return 0; }
  say "stopping docker-registry (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do registry_pid >/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

start_registry() {
  mkdir -p "$ROOT" "$(dirname "$LOG")"
  # Our own config: the package's /etc/docker/registry/config.yml listens on every
  # interface and asks for htpasswd auth.
  cat > "$CONFIG" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $ROOT
  delete:
    enabled: true
http:
  addr: $ADDR
EOF
  echo "===== $(date -u +%FT%TZ) registry-up.sh: $BINARY serve $CONFIG" >> "$LOG"
  # setsid + nohup: it outlives this script; 9>&-: it must not inherit the lock.
  setsid nohup "$BINARY" serve "$CONFIG" >> "$LOG" 2>&1 < /dev/null 9>&- &
  echo $! > "$PIDFILE"
  local deadline=$(( $(date +%s) + TIMEOUT ))
  until answers; do
    if ! registry_pid >/dev/null; then
      tail -n 15 "$LOG" | sed 's/^/    /' >&2
      die "docker-registry exited during start-up (log: $LOG)"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "docker-registry did not answer on $ADDR in ${TIMEOUT}s"
    sleep 0.2
  done
}

main() {
  case "${1:-}" in
    "") ;;
    --status)
      answers || { say "no registry answers on $ADDR"; exit 1; }
      echo "export MLFORM_TEST_REGISTRY=$ADDR"
      exit 0 ;;
    --stop) stop_registry; exit 0 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac

  mkdir -p "$CACHE"
  exec 9> "$CACHE/registry-up.lock"
  flock -w 120 9 || die "another registry-up.sh holds $CACHE/registry-up.lock (120s)"

  if answers; then
    say "registry already answers on $ADDR"
  else
    install_package
    if registry_pid >/dev/null; then stop_registry; fi  # ours, alive but not answering
    say "starting docker-registry on $ADDR (storage $ROOT, log $LOG)"
    start_registry
    say "registry answers on $ADDR"
  fi
  echo "export MLFORM_TEST_REGISTRY=$ADDR"
}

main "$@"
