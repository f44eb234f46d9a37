#!/usr/bin/env bash
# Local Redis for sendgate — no Docker.
#
#   bash infra/redis/redis.sh up|start   if $SENDGATE_REDIS_URL answers PING: use it (no-op).
#                                        Otherwise install Debian's redis-server if absent and
#                                        start a PRIVATE one on 127.0.0.1:$REDIS_PORT (daemonized,
#                                        no persistence). Idempotent.
#   bash infra/redis/redis.sh down|stop  stop the private one (by pid file); never touches a Redis
#                                        that this script did not start. Idempotent.
#   bash infra/redis/redis.sh kill       SIGKILL the private one (tests that lose Redis)
#   bash infra/redis/redis.sh restart    down + up
#   bash infra/redis/redis.sh status     exit 0 when the URL answers PING, 3 when not
#   bash infra/redis/redis.sh install    only make sure redis-server is installed
#
# Environment: REDIS_PORT (16379), SENDGATE_REDIS_URL (redis://127.0.0.1:$REDIS_PORT/0),
# SENDGATE_VAR (/tmp/sendgate): pid and log of the private server in $SENDGATE_VAR/redis/redis-$PORT.{pid,log}.
#
# REDIS_PROFILE=secure (`make redis-up-secure`, issue 13): always a private server, on
# REDIS_SECURE_PORT (26379), state in $SENDGATE_VAR/redis-secure, with ACL users and no
# anonymous access (the shared Redis and its ACLs are never touched):
#   admin   everything (this script's own PING, operators)
#   worker  read-write on the status view's keys only (REDIS_VIEW_NAMESPACE, sg:view:*):
#           the worker and `sendgate view follow|rebuild`
#   status  read-only on those keys: `sendgate status` and the status server
# Passwords: SENDGATE_REDIS_{ADMIN,WORKER,STATUS}_PASSWORD, else made once into
# $SENDGATE_VAR/redis-secure/secrets/<user> (mode 600). The ACL file (users-$PORT.acl) holds SHA-256 hashes only.
# Clients: SENDGATE_REDIS_URL=redis://127.0.0.1:26379/0 SENDGATE_REDIS_USERNAME=worker
# SENDGATE_REDIS_PASSWORD=... (never in the URL on a command line).
set -euo pipefail

SENDGATE_VAR="${SENDGATE_VAR:-/tmp/sendgate}"
REDIS_PROFILE="${REDIS_PROFILE:-plain}"
case "$REDIS_PROFILE" in
  plain)
    REDIS_PORT="${REDIS_PORT:-16379}"
    URL="${SENDGATE_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
    REDIS_VAR="$SENDGATE_VAR/redis"
    ;;
  secure)
    REDIS_PORT="${REDIS_SECURE_PORT:-26379}"
    URL="redis://127.0.0.1:$REDIS_PORT/0"
    REDIS_VAR="$SENDGATE_VAR/redis-secure"
    ;;
  *) echo "redis.sh: error: REDIS_PROFILE must be plain or secure, not $REDIS_PROFILE" >&2; exit 2 ;;
esac
VIEW_NAMESPACE="${REDIS_VIEW_NAMESPACE:-sg:view:}"
SECRETS_DIR="$REDIS_VAR/secrets"
START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
STOP_TIMEOUT="${REDIS_STOP_TIMEOUT:-10}"

log() { echo "redis.sh: $*"; }
die() { echo "redis.sh: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- URL
# redis://[user[:password]@]host[:port][/db]  (rediss:// is pinged with redis-cli only)
url_rest="${URL#*://}"
url_rest="${url_rest%%/*}"
url_rest="${url_rest##*@}"
if [[ "$url_rest" == \[*\]* ]]; then # [::1]:port
  HOST="${url_rest%%]*}"; HOST="${HOST#[}"
  PORT="${url_rest##*]}"; PORT="${PORT#:}"
else
  HOST="${url_rest%%:*}"
  PORT=""
  [[ "$url_rest" == *:* ]] && PORT="${url_rest##*:}"
fi
PORT="${PORT:-6379}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "cannot read a port from SENDGATE_REDIS_URL=$URL"

# One private server per port: redis-$PORT.pid / redis-$PORT.log (the data dir is unused: no persistence).
PID_FILE="$REDIS_VAR/redis-$PORT.pid"
LOG_FILE="$REDIS_VAR/redis-$PORT.log"
ACL_FILE="$REDIS_VAR/users-$PORT.acl"

is_local_host() { [[ "$HOST" == 127.* || "$HOST" == localhost || "$HOST" == ::1 ]]; }

# ping: the configured URL answers PING (redis-cli when installed, else raw RESP over bash).
ping() {
  if [[ "$REDIS_PROFILE" == secure ]]; then
    command -v redis-cli >/dev/null 2>&1 || return 1
    # the password through the environment, never argv
    [[ "$(REDISCLI_AUTH="$(secret admin)" timeout 3 redis-cli -u "$URL" --user admin ping 2>/dev/null)" == PONG ]]
  elif command -v redis-cli >/dev/null 2>&1; then
    [[ "$(timeout 3 redis-cli -u "$URL" ping 2>/dev/null)" == PONG ]]
  else
    [[ "$URL" == redis://* ]] || return 1
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 3 bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 1
      printf "PING\r\n" >&3
      IFS= read -r line <&3
      [[ "$line" == "+PONG"* ]]' "$HOST" "$PORT" 2>/dev/null
  fi
}

# shellcheck disable=SC2016  # expanded by the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$PORT" 2>/dev/null; }

# ---------------------------------------------------------------- private server bookkeeping
alive() {
  local pid="$1"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redis.*:$PORT"
}

our_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  alive "$pid" || return 1
  echo "$pid"
}

lock() {
  mkdir -p "$REDIS_VAR"
  exec 9>"$REDIS_VAR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 9 || die "another redis.sh holds $REDIS_VAR/.lock"
  fi
}

# ---------------------------------------------------------------- secure profile
# secret USER: SENDGATE_REDIS_<USER>_PASSWORD, else a random one kept in secrets/USER.
secret() {
  local var="SENDGATE_REDIS_${1^^}_PASSWORD" f="$SECRETS_DIR/$1"
  if [[ -n "${!var:-}" ]]; then
    printf '%s' "${!var}"
    return
  fi
  if [[ ! -s "$f" ]]; then
    (umask 077 && mkdir -p "$SECRETS_DIR" && openssl rand -hex 24 | tr -d '\n' >"$f")
  fi
  cat "$f"
}

hash_of() { printf '%s' "$(secret "$1")" | sha256sum | cut -d' ' -f1; }

# write_acl_file: the users (hashed passwords); the default user is off (no anonymous access).
write_acl_file() {
  local ns="$VIEW_NAMESPACE"
  (
    umask 077
    cat >"$ACL_FILE.tmp" <<EOF
user default off resetkeys resetchannels -@all
user admin on #$(hash_of admin) ~* &* +@all
user worker on #$(hash_of worker) resetkeys ~$ns* resetchannels -@all +@connection +@transaction +@read +@write -@dangerous
user status on #$(hash_of status) resetkeys %R~$ns* resetchannels -@all +@connection +@read -@dangerous
EOF
    mv "$ACL_FILE.tmp" "$ACL_FILE"
  )
}

# ---------------------------------------------------------------- install
ensure_installed() {
  command -v redis-server >/dev/null 2>&1 && return 0
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 ||
      die "redis-server not found and not root: install it (apt-get install -y redis-server) or set SENDGATE_REDIS_URL"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "redis-server not found and no apt-get: install Redis 7 or set SENDGATE_REDIS_URL to a running one"
  log "redis-server not found: installing Debian's redis-server (apt-get update + install) ..."
  local t0 policy_added=""
  t0="$(now)"
  # Keep the package's init script from starting a system-wide Redis on 6379.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  local rc=0
  # waits for the dpkg/apt locks (bounded) instead of failing at once: infra/apt.sh
  bash "$(dirname "${BASH_SOURCE[0]}")/../apt.sh" install redis-server \
    >"$REDIS_VAR/apt.log" 2>&1 || rc=$?
  [[ -n "$policy_added" ]] && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
  if ((rc != 0)) || ! command -v redis-server >/dev/null 2>&1; then
    tail -n 20 "$REDIS_VAR/apt.log" >&2
    die "installing redis-server failed (full output: $REDIS_VAR/apt.log)"
  fi
  log "installed $(redis-server --version | awk '{print $1, $2, $3}') in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- commands
cmd_up() {
  lock
  local pid
  if ping; then
    if pid="$(our_pid)"; then
      log "private Redis already running (pid $pid) at $URL — nothing to do"
    elif [[ "$REDIS_PROFILE" == secure ]]; then
      die "a Redis not started by redis.sh answers at $URL as our admin user; refusing to use it"
    else
      log "Redis at $URL already answers PING — using it (not started by redis.sh)"
    fi
    return 0
  fi
  is_local_host ||
    die "Redis at $URL does not answer PING and is not on this machine: start it, or unset SENDGATE_REDIS_URL"
  if pid="$(our_pid)"; then
    die "our redis-server (pid $pid) runs but $URL does not answer PING (see $LOG_FILE)"
  fi
  port_open && die "port $HOST:$PORT is in use by something that does not answer Redis PING (set REDIS_PORT)"
  ensure_installed
  rm -f "$PID_FILE"
  local t0 deadline bind="$HOST" acl=()
  [[ "$bind" == localhost ]] && bind=127.0.0.1
  t0="$(now)"
  if [[ "$REDIS_PROFILE" == secure ]]; then
    write_acl_file
    acl=(--aclfile "$ACL_FILE")
  fi
  redis-server --bind "$bind" --port "$PORT" --protected-mode yes \
    --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG_FILE" --dir "$REDIS_VAR" \
    --save '' --appendonly no --databases 16 "${acl[@]}" 9>&- </dev/null ||
    die "redis-server failed to start (see $LOG_FILE)"
  deadline=$(($(date +%s) + START_TIMEOUT))
  until ping; do
    if (($(date +%s) >= deadline)); then
      tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
      die "private redis-server did not answer PING at $URL within ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
  log "private Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//') ready at $URL" \
    "(pid $(cat "$PID_FILE" 2>/dev/null || echo ?), no persistence, log $LOG_FILE) in $(elapsed "$t0") s"
}

stop_pid() {
  local pid="$1" sig="$2" deadline
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$(($(date +%s) + STOP_TIMEOUT))
  while alive "$pid"; do
    if (($(date +%s) >= deadline)); then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.05
  done
  rm -f "$PID_FILE"
}

cmd_down() {
  lock
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    if ping; then
      log "Redis at $URL was not started by redis.sh — leaving it alone"
    else
      log "no private Redis running — nothing to do"
    fi
    return 0
  fi
  stop_pid "$pid" TERM
  log "stopped private Redis (pid $pid)"
}

cmd_kill() {
  lock
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    log "no private Redis running — nothing to kill"
    return 0
  fi
  stop_pid "$pid" KILL
  log "SIGKILLed private Redis (pid $pid)"
}

cmd_status() {
  local pid
  if ping; then
    if pid="$(our_pid)"; then
      log "private Redis running (pid $pid) at $URL"
    else
      log "Redis at $URL answers PING (not started by redis.sh)"
    fi
    return 0
  fi
  log "no Redis answers at $URL"
  return 3
}

case "${1:-}" in
  up | start) cmd_up ;;
  down | stop) cmd_down ;;
  kill | kill9) cmd_kill ;;
  restart) cmd_down && cmd_up ;;
  status) cmd_status ;;
  install) mkdir -p "$REDIS_VAR"; ensure_installed; log "redis-server: $(command -v redis-server)" ;;
  *)
    echo "usage: $0 up|down|start|stop|kill|restart|status|install" >&2
    exit 2
    ;;
esac
