#!/usr/bin/env bash
# A Docker daemon for the container image's build and tests: `start` installs Debian's
# docker.io (and debootstrap, docker-compose) when missing and starts dockerd unless one
# already answers; `stop` ends only a daemon this script started, by its pid.
# Usage: scripts/dockerd.sh start|stop|status
set -euo pipefail

STATE=${UNIFAAS_DOCKERD_STATE:-/run/unifaas-dockerd}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
START_WAIT_S=60

answers() { docker info >/dev/null 2>&1; }

install() {
  bash "$(dirname "$0")/apt-install.sh" dockerd.sh docker.io debootstrap docker-compose
}

start() {
  install
  if answers; then
    echo "dockerd.sh: a Docker daemon already answers; using it"
    return 0
  fi
  mkdir -p "$STATE"
  echo "dockerd.sh: starting dockerd (log: $LOG)"
  # setsid: its own session, so a terminal's Ctrl-C reaches it only through `stop`.
  setsid dockerd --pidfile "$PIDFILE.daemon" >"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq $((START_WAIT_S * 5))); do
    if answers; then
      echo "dockerd.sh: dockerd ready (pid $(cat "$PIDFILE"))"
      return 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "dockerd.sh: dockerd exited; its log:" >&2
      tail -20 "$LOG" >&2
      rm -f "$PIDFILE"
      return 1
    fi
    sleep 0.2
  done
  echo "dockerd.sh: dockerd did not answer in ${START_WAIT_S} s; its log:" >&2
  tail -20 "$LOG" >&2
  stop
  return 1
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    echo "dockerd.sh: stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    # dockerd stops its containers and containerd before it exits.
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "answers"; else echo "no daemon"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
