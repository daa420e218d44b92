#!/usr/bin/env bash
# Bring up a private Docker engine and the registry-free base image that tests use.
#
#   scripts/docker-up.sh            install if missing, start dockerd if not answering,
#                                   build mlform/base:bookworm if missing; prints
#                                   `export DOCKER_HOST=...` on stdout (all else on stderr)
#   scripts/docker-up.sh --no-image engine only
#   scripts/docker-up.sh --status   exit 0 if the engine answers and the image exists
#   scripts/docker-up.sh --stop     stop the dockerd this script started
#   scripts/docker-up.sh --rebuild  drop the image and the cached rootfs tarball, rebuild
#
# Typical use:   eval "$(scripts/docker-up.sh)"
#
# Idempotent and safe to run twice (even at once: a lock serialises runs). The engine
# runs with --bridge=none --iptables=false: containers get either no network or the
# host's (`--network host`, services on 127.0.0.1). No registry is ever pulled from:
# the base image is debootstrap'ed from Debian's mirror and `docker import`ed.
#
# Settings (environment):
#   MLFORM_DOCKER_SOCK      unix socket path            (/run/mlform-docker.sock)
#   MLFORM_DOCKER_ROOT      dockerd --data-root          (/var/lib/mlform-docker)
#   MLFORM_DOCKER_EXEC      dockerd --exec-root          (/run/mlform-docker)
#   MLFORM_DOCKER_LOG       dockerd log file             (/var/log/mlform/dockerd.log)
#   MLFORM_DOCKER_STORAGE   storage driver; empty = dockerd's default (overlay2),
#                           with one retry on vfs if the default fails to start
#   MLFORM_DOCKER_TIMEOUT   seconds to wait for dockerd  (60)
#   MLFORM_CACHE            rootfs tarball cache         (/var/cache/mlform)
#   MLFORM_DEBIAN_MIRROR    Debian mirror for debootstrap (read from apt's sources)
#   MLFORM_BASE_IMAGE       image name                   (mlform/base:bookworm)
set -euo pipefail

SOCK=${MLFORM_DOCKER_SOCK:-/run/mlform-docker.sock}
DATA_ROOT=${MLFORM_DOCKER_ROOT:-/var/lib/mlform-docker}
EXEC_ROOT=${MLFORM_DOCKER_EXEC:-/run/mlform-docker}
LOG=${MLFORM_DOCKER_LOG:-/var/log/mlform/dockerd.log}
STORAGE=${MLFORM_DOCKER_STORAGE:-}
TIMEOUT=${MLFORM_DOCKER_TIMEOUT:-60}
CACHE=${MLFORM_CACHE:-/var/cache/mlform}
IMAGE=${MLFORM_BASE_IMAGE:-mlform/base:bookworm}
SUITE=bookworm
INCLUDE=python3,python3-venv
PIDFILE=$EXEC_ROOT.pid
HOST=unix://$SOCK
TARBALL=$CACHE/base-$SUITE-minbase-${INCLUDE//,/-}.tar

say() { printf 'docker-up: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
dk() { docker -H "$HOST" "$@"; }

engine_answers() { timeout 10 docker -H "$HOST" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

alive() {  # $1 is a live process, not a zombie (pid 1 here may reap late)
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

dockerd_pid() {  # pid of the dockerd recorded in our pidfile, if it is alive and a dockerd
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  echo "$pid"
}

this_start_log() {  # the log lines written since our last start of dockerd
  awk '/^===== .* docker-up.sh: dockerd / { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' \
    "$LOG" 2>/dev/null || true
}

log_tail() {
  say "last lines of $LOG:"
  this_start_log | grep -v 'level=info' | tail -n 25 | cut -c1-400 | sed 's/^/    /' >&2 || true
}

install_packages() {
  if command -v dockerd >/dev/null && command -v containerd >/dev/null &&
     command -v runc >/dev/null && command -v debootstrap >/dev/null &&
     command -v docker >/dev/null; then
    return
  fi
  [ "$(id -u)" = 0 ] || die "docker.io/debootstrap are missing and installing them needs root"
  say "installing docker.io and debootstrap from Debian's packages"
  local t0; t0=$(now)
  export DEBIAN_FRONTEND=noninteractive
  local apt_log=$CACHE/apt.log
  if ! { apt-get update && apt-get install -y docker.io debootstrap; } > "$apt_log" 2>&1; then
    tail -n 25 "$apt_log" | sed 's/^/    /' >&2
    die "apt-get install docker.io debootstrap failed (full log: $apt_log)"
  fi
  say "installed in $(since "$t0"): $(dockerd --version)"
}

stop_engine() {
  local pid
  pid=$(dockerd_pid) || { say "no dockerd of ours is running"; return 0; }
  say "stopping dockerd (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    say "dockerd did not stop in 15s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
}

start_dockerd() {  # $1: storage driver or empty. Returns 0 once the engine answers.
  local driver=$1 pid deadline
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$(dirname "$LOG")" "$(dirname "$SOCK")"
  # Our own (empty) daemon config, so a host's /etc/docker/daemon.json cannot clash.
  [ -f "$DATA_ROOT.json" ] || echo '{}' > "$DATA_ROOT.json"
  # A pidfile left by a killed dockerd stops the next one ("pid file found") while the
  # dead pid is still a zombie or was reused; it is ours and stale here, so drop it.
  dockerd_pid >/dev/null || rm -f "$PIDFILE"
  # Same for the containerd that dockerd runs: with a stale pidfile dockerd waits on a
  # dead socket and gives up ("timeout waiting for containerd to start").
  local cpidfile=$EXEC_ROOT/containerd/containerd.pid cpid
  cpid=$(cat "$cpidfile" 2>/dev/null) || cpid=
  if [ -n "$cpid" ] && ! { alive "$cpid" && [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = containerd ]; }; then
    rm -f "$cpidfile"
  fi
  local args=(--bridge=none --iptables=false --ip6tables=false
              --config-file "$DATA_ROOT.json"
              --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT"
              --pidfile "$PIDFILE" --host "$HOST")
  [ -n "$driver" ] && args+=(--storage-driver "$driver")
  {
    echo "===== $(date -u +%FT%TZ) docker-up.sh: dockerd ${args[*]}"
  } >> "$LOG"
  # setsid + nohup: the daemon outlives this script and the shell that ran it.
  # 9>&-: the daemon must not inherit the lock held on fd 9, or the next run would wait.
  setsid nohup dockerd "${args[@]}" >> "$LOG" 2>&1 < /dev/null 9>&- &
  pid=$!
  local started; started=$(date +%s)
  deadline=$(( started + TIMEOUT ))
  local said=$started
  until engine_answers; do
    if [ "$(date +%s)" -ge $(( said + 5 )) ]; then
      said=$(date +%s)
      say "waiting for dockerd to answer on $SOCK ($(( said - started ))s of ${TIMEOUT}s; log $LOG)"
    fi
    # Dead = the child we started is gone (or a zombie) and no dockerd holds our pidfile
    # (the latter covers a setsid that forked), after a 2 s grace for the pidfile.
    if ! alive "$pid" && ! dockerd_pid >/dev/null && [ "$(date +%s)" -ge $(( started + 2 )) ]; then
      wait "$pid" 2>/dev/null || true
      say "dockerd exited during start-up"
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "dockerd did not answer on $SOCK within ${TIMEOUT}s"
      pid=$(dockerd_pid) && kill -TERM "$pid" 2>/dev/null
      return 1
    fi
    sleep 0.2
  done
}

ensure_engine() {
  if engine_answers; then
    say "engine already answers on $SOCK ($(dk version --format 'server {{.Server.Version}}'))"
    return
  fi
  [ "$(id -u)" = 0 ] || die "starting dockerd needs root"
  # A dockerd of ours that is alive but not answering (still starting, or wedged):
  # give it a short grace period, then replace it.
  local pid
  if pid=$(dockerd_pid); then
    say "dockerd (pid $pid) is running but not answering; waiting up to 15s"
    for _ in $(seq 1 75); do engine_answers && { say "engine answers now"; return; }; sleep 0.2; done
    stop_engine
  fi
  local t0; t0=$(now)
  say "starting dockerd (socket $SOCK, data root $DATA_ROOT, log $LOG)"
  if start_dockerd "$STORAGE"; then
    :
  elif [ -z "$STORAGE" ] &&
       this_start_log | grep -qiE 'error initializing graphdriver|driver not supported|overlay.*(not supported|failed)'; then
    log_tail
    say "default storage driver failed; retrying with --storage-driver=vfs (slower, larger)"
    stop_engine
    start_dockerd vfs || { log_tail; die "dockerd failed to start (also with vfs)"; }
  else
    log_tail
    die "dockerd failed to start"
  fi
  say "engine up in $(since "$t0") ($(dk info --format 'server {{.ServerVersion}}, storage {{.Driver}}'))"
}

debian_mirror() {
  if [ -n "${MLFORM_DEBIAN_MIRROR:-}" ]; then echo "$MLFORM_DEBIAN_MIRROR"; return; fi
  local m
  # deb822 sources (URIs: ...) first, then one-line sources (deb URL suite ...).
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
      awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { if ($i ~ /\/debian\/?$/) { print $i; exit } break } }')
  fi
  [ -n "$m" ] || die "no Debian mirror in apt's sources (/etc/apt/sources.list*): set MLFORM_DEBIAN_MIRROR to one"
  echo "$m"
}

remove_tree() {  # unmount anything debootstrap left mounted inside, then delete
  local dir=$1 mnt
  [ -e "$dir" ] || return 0
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
  rm -rf --one-file-system "$dir"
}

build_tarball() {
  [ -s "$TARBALL" ] && { say "using cached rootfs $TARBALL"; return; }
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  mkdir -p "$CACHE"
  local mirror rootfs t0
  mirror=$(debian_mirror)
  rootfs=$CACHE/rootfs.tmp
  remove_tree "$rootfs"
  t0=$(now)
  say "debootstrap --variant=minbase --include=$INCLUDE $SUITE from $mirror (about a minute)"
  if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$mirror" \
         > "$CACHE/debootstrap.log" 2>&1; then
    tail -n 25 "$CACHE/debootstrap.log" | sed 's/^/    /' >&2
    remove_tree "$rootfs"
    die "debootstrap failed (full log: $CACHE/debootstrap.log)"
  fi
  # Trim what an image built offline never uses: downloaded .debs and apt lists.
  find "$rootfs/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -delete
  find "$rootfs/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
  mv -f "$TARBALL.tmp" "$TARBALL"
  remove_tree "$rootfs"
  say "rootfs tarball ready in $(since "$t0"): $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

ensure_image() {
  if dk image inspect "$IMAGE" >/dev/null 2>&1; then
    say "image $IMAGE present"
    return
  fi
  build_tarball
  local t0; t0=$(now)
  say "importing $TARBALL as $IMAGE"
  dk import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.mlform.base=$SUITE-minbase" \
    - "$IMAGE" < "$TARBALL" >/dev/null || die "docker import of $TARBALL failed"
  dk run --rm --network none "$IMAGE" python3 -c 'import venv' ||
    die "$IMAGE was imported but python3 does not run in it"
  say "image $IMAGE imported in $(since "$t0")"
}

main() {
  local mode=up with_image=1
  case "${1:-}" in
    "") ;;
    --no-image) with_image=0 ;;
    --status) mode=status ;;
    --stop) mode=stop ;;
    --rebuild) mode=rebuild ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac

  if [ "$mode" = status ]; then
    engine_answers || { say "engine not answering on $SOCK"; exit 1; }
    dk image inspect "$IMAGE" >/dev/null 2>&1 || { say "engine up, image $IMAGE missing"; exit 1; }
    say "engine up on $SOCK, image $IMAGE present"
    echo "export DOCKER_HOST=$HOST"
    exit 0
  fi

  if [ "$mode" = stop ]; then stop_engine; exit 0; fi

  mkdir -p "$CACHE"
  exec 9> "$CACHE/docker-up.lock"
  if ! flock -n 9; then
    say "waiting for another docker-up.sh to finish (it holds $CACHE/docker-up.lock)"
    flock -w 900 9 || die "another docker-up.sh holds $CACHE/docker-up.lock (900s)"
  fi

  local t0; t0=$(now)
  install_packages
  ensure_engine
  if [ "$mode" = rebuild ]; then
    say "removing $IMAGE and $TARBALL"
    dk image rm -f "$IMAGE" >/dev/null 2>&1 || true
    rm -f "$TARBALL"
  fi
  [ "$with_image" = 1 ] && ensure_image
  say "ready in $(since "$t0"); DOCKER_HOST=$HOST"
  echo "export DOCKER_HOST=$HOST"
}

main "$@"
