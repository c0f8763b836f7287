# shellcheck shell=bash
# Sourced by scripts/kafka-local, prometheus-local and jaeger-local: one way to run
# a local daemon in the background, find it again by its pid file, wait until it
# is ready, stop it, report its status, and hold a lock while doing so.
#
# The supervisor sets before calling these:
#   SUP_NAME     message prefix, e.g. "kafka-local"
#   SUP_STATE    state directory (pid file, lock, log)
#   SUP_PIDFILE  the pid file
#   SUP_LOG      file the daemon's stdout and stderr go to
#   SUP_MARKER   a string the daemon's command line contains, so that a pid the
#                OS reused for another process is never signalled
#   SUP_GRACE    seconds a stopping daemon gets before SIGKILL
# and defines `show_logs` (what to print when a start fails). Exit codes: 0 ok,
# 1 error, 2 usage, 3 `status` when stopped, 4 the tool cannot be had here.

shopt -u patsub_replacement 2>/dev/null || true  # `&` in a value stays literal

say() { echo "$SUP_NAME: $*"; }
die() { echo "$SUP_NAME: error: $1" >&2; exit "${2:-1}"; }

# The pid in the pid file, if that process is alive and is ours.
sup_pid() {
  local pid
  [[ -f "$SUP_PIDFILE" ]] || return 1
  pid="$(<"$SUP_PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SUP_MARKER" || return 1
  echo "$pid"
}

# shellcheck disable=SC2016  # $1 is expanded by the inner bash, on purpose
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# Die when a port is taken by someone else; $1 names the variable that moves it.
sup_require_free() {
  local hint="$1" p
  shift
  for p in "$@"; do
    ! port_open "$p" || die "port $p is taken by another process (set $hint)"
  done
}

# Copy template $1 to $2, replacing each @KEY@ by VALUE for the KEY=VALUE arguments.
sup_render() {
  local text kv
  text="$(<"$1")"
  for kv in "${@:3}"; do text="${text//@${kv%%=*}@/${kv#*=}}"; done
  printf '%s\n' "$text" >"$2.tmp"
  mv "$2.tmp" "$2"
}

# Run "$@" detached: nohup and no stdin, so it outlives this script and a closed
# terminal; 9>&- keeps it from inheriting (and holding) the start/stop lock.
sup_spawn() {
  nohup "$@" </dev/null >>"$SUP_LOG" 2>&1 9>&- &
  SUP_SPAWNED=$!
  echo "$SUP_SPAWNED" >"$SUP_PIDFILE"
}

# Poll command $2 until it succeeds: dies if pid $1 exits meanwhile, returns 1
# after $3 seconds.
sup_wait() {
  local pid="$1" check="$2" deadline=$((SECONDS + $3))
  until "$check"; do
    kill -0 "$pid" 2>/dev/null || { show_logs; die "pid $pid exited during start-up"; }
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# sup_wait for a daemon this script just started: on time-out, stop it and die.
sup_await() {
  sup_wait "$@" && return 0
  show_logs
  sup_stop >/dev/null
  die "not ready within ${3}s; stopped it"
}

# SIGTERM, up to SUP_GRACE seconds for a clean exit, then SIGKILL.
sup_stop() {
  local pid i
  if ! pid="$(sup_pid)"; then
    rm -f "$SUP_PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < SUP_GRACE * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still alive after ${SUP_GRACE} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$SUP_PIDFILE"
  say "stopped"
}

# One line of status; `running` needs the daemon alive, $1 (a check) says whether
# it answers, $2 is appended when it does. Returns 3 when stopped.
sup_status() {
  local pid
  if ! pid="$(sup_pid)"; then
    say "stopped"
    return 3
  fi
  if "$1"; then say "running (pid $pid)$2"; else say "running (pid $pid), not answering yet"; fi
}

# One start/stop at a time per state directory (parallel test runners, CI steps).
sup_lock() {
  mkdir -p "$SUP_STATE"
  exec 9>"$SUP_STATE/.lock"
  flock -w "$1" 9 || die "another $SUP_NAME holds $SUP_STATE/.lock"
}
