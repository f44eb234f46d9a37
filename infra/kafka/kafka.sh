#!/usr/bin/env bash
# Local single-node KRaft Apache Kafka 4.0.2 for sendgate — no Docker.
#
#   bash infra/kafka/kafka.sh up|start     resolve jars (first run), format (first run), start, wait
#                                          until the broker answers metadata. Idempotent.
#   bash infra/kafka/kafka.sh down|stop    SIGTERM, wait KAFKA_STOP_TIMEOUT s, then SIGKILL. Idempotent.
#   bash infra/kafka/kafka.sh restart      down + up (data kept)
#   bash infra/kafka/kafka.sh kill9        SIGKILL the broker (chaos tests); data kept, `up` recovers
#   bash infra/kafka/kafka.sh status       exit 0 when running, 3 when not
#   bash infra/kafka/kafka.sh logs [-f]    tail the broker log ($SENDGATE_VAR/kafka/kafka.log)
#   bash infra/kafka/kafka.sh reset        down + delete the data dir (next `up` formats anew)
#   bash infra/kafka/kafka.sh resolve      only resolve the jars into the cache
#
# KAFKA_PROFILE=secure (`make kafka-up-secure`, issue 13): a second, separate broker with
# SASL_SSL (SCRAM-SHA-512) on KAFKA_SECURE_PORT (29092), a TLS controller listener with client
# certificates on KAFKA_SECURE_CONTROLLER_PORT (29093), KRaft's StandardAuthorizer and the ACLs
# of `sendgate acl plan` (applied with `sendgate acl apply` after each start: needs the repo's
# .venv or SENDGATE_PYTHON). State in $SENDGATE_VAR/kafka-secure: pki/ (a local CA and the
# broker certificate, made once with openssl), secrets/ (one random password per user, made
# once; users created at format time with --add-scram), clients/<user>.properties (librdkafka
# settings for SENDGATE_KAFKA_CONFIG_FILE; mode 600). The default profile is unchanged.
#
# The jars come from Maven Central through infra/kafka/pom.xml into a cache outside git:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sendgate/kafka-4.0.2/lib   (override: SENDGATE_KAFKA_CACHE)
# State (server.properties, data, pid, logs) lives in $SENDGATE_VAR/kafka (default /tmp/sendgate).
#
# Environment: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093), KAFKA_HOST (127.0.0.1),
# SENDGATE_VAR, KAFKA_HEAP_OPTS ("-Xms256m -Xmx768m"), KAFKA_START_TIMEOUT (120 s),
# KAFKA_STOP_TIMEOUT (30 s).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION=4.0.2
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
SENDGATE_VAR="${SENDGATE_VAR:-/tmp/sendgate}"
KAFKA_PROFILE="${KAFKA_PROFILE:-plain}"
case "$KAFKA_PROFILE" in
  plain)
    KAFKA_PORT="${KAFKA_PORT:-19092}"
    KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
    KAFKA_VAR="$SENDGATE_VAR/kafka"
    ;;
  secure)
    KAFKA_PORT="${KAFKA_SECURE_PORT:-29092}"
    KAFKA_CONTROLLER_PORT="${KAFKA_SECURE_CONTROLLER_PORT:-29093}"
    KAFKA_VAR="$SENDGATE_VAR/kafka-secure"
    ;;
  *) echo "kafka.sh: error: KAFKA_PROFILE must be plain or secure, not $KAFKA_PROFILE" >&2; exit 2 ;;
esac
PKI_DIR="$KAFKA_VAR/pki"
SECRETS_DIR="$KAFKA_VAR/secrets"
CLIENTS_DIR="$KAFKA_VAR/clients"
# SCRAM users of the secure profile (the roles of `sendgate acl plan`).
SECURE_USERS=(admin shop worker esp auditor viewer)
DATA_DIR="$KAFKA_VAR/data"
PID_FILE="$KAFKA_VAR/kafka.pid"
LOG_FILE="$KAFKA_VAR/kafka.log"
OUT_FILE="$KAFKA_VAR/kafka.out"
PROPS="$KAFKA_VAR/server.properties"
PROBE_PROPS="$KAFKA_VAR/probe.properties"
CLUSTER_ID_FILE="$KAFKA_VAR/cluster.id"
CACHE="${SENDGATE_KAFKA_CACHE:-${XDG_CACHE_HOME:-${HOME:-$SENDGATE_VAR}/.cache}/sendgate/kafka-$KAFKA_VERSION}"
LIB="$CACHE/lib"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
JVM_OPTS=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true)
INSTALL_HINT="apt-get install -y openjdk-17-jre-headless maven"

log() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- prerequisites
need_java() {
  command -v java >/dev/null 2>&1 || die "java not found: Kafka $KAFKA_VERSION needs Java 17+ ($INSTALL_HINT)"
  local v major
  v="$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "java $v is too old: Kafka $KAFKA_VERSION needs Java 17+ ($INSTALL_HINT)"
  fi
}

# The listeners the running broker was started with (server.properties is rendered at each start).
wanted_listeners() {
  local client=PLAINTEXT
  [[ "$KAFKA_PROFILE" == secure ]] && client=SASL_SSL
  echo "$client://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
}
running_listeners() { sed -n 's/^listeners=//p' "$PROPS" 2>/dev/null; }

pom_hash() { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; }

ensure_lib() {
  if [[ -f "$LIB/.pom.sha256" && "$(cat "$LIB/.pom.sha256")" == "$(pom_hash)" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found: needed once to resolve Kafka $KAFKA_VERSION from Maven Central ($INSTALL_HINT)"
  mkdir -p "$CACHE"
  local tmp="$CACHE/lib.tmp.$$" t0
  rm -rf "$tmp"
  t0="$(now)"
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central into $LIB (once) ..."
  if ! mvn -q -B --no-transfer-progress -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE/mvn.log" 2>&1; then
    tail -n 30 "$CACHE/mvn.log" >&2
    rm -rf "$tmp"
    die "resolving the Kafka jars failed (full output: $CACHE/mvn.log)"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "resolve produced no kafka_2.13 jar (see $CACHE/mvn.log)"
  pom_hash >"$tmp/.pom.sha256"
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  log "resolved $(find "$LIB" -name '*.jar' | wc -l) jars ($(du -sh "$LIB" | cut -f1)) in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- process helpers
# alive PID: the process exists and is a kafka.Kafka broker. After a kill its main thread turns
# zombie first (empty cmdline) while the other threads, which hold the sockets, still tear
# down: it counts as alive until only the zombie main thread is left.
alive() {
  local pid="$1"
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  if [[ "$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" == Z ]]; then
    (($(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) > 1))
    return
  fi
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

# wait_ports_closed: after the broker died, give the kernel a moment to close its listeners
# (those in the server.properties it was started with, whatever KAFKA_PORT says now).
wait_ports_closed() {
  local deadline=$(($(date +%s) + 10)) hostports hp open
  hostports="$(running_listeners | tr ',' '\n' | sed -n 's|^[A-Z_]*://||p')"
  while (($(date +%s) < deadline)); do
    open=""
    for hp in $hostports; do
      port_open "${hp%:*}" "${hp##*:}" && open=1
    done
    [[ -z "$open" ]] && return 0
    sleep 0.1
  done
}

our_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  alive "$pid" || return 1
  echo "$pid"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# probe: the broker answers a metadata request (Java only: no Python venv needed).
probe() {
  (
    umask 077
    cat >"$PROBE_PROPS" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=8000
socket.connection.setup.timeout.ms=2000
EOF
    if [[ "$KAFKA_PROFILE" == secure ]]; then java_client_props admin >>"$PROBE_PROPS"; fi
  )
  timeout 30 java -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto -Dlog4j2.level=ERROR \
    -Dlog4j2.configurationFile="$HERE/log4j2-tools.xml" -cp "$LIB/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" \
    --command-config "$PROBE_PROPS" --list >"$KAFKA_VAR/probe.out" 2>&1 9>&-
}

show_tail() {
  echo "---- last lines of $LOG_FILE ----" >&2
  tail -n "${1:-40}" "$LOG_FILE" >&2 2>/dev/null || echo "(no log yet)" >&2
  if [[ -s "$OUT_FILE" ]]; then
    echo "---- last lines of $OUT_FILE (JVM stdout/stderr) ----" >&2
    tail -n 15 "$OUT_FILE" >&2
  fi
}

lock() {
  mkdir -p "$KAFKA_VAR"
  exec 9>"$KAFKA_VAR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 9 || die "another kafka.sh holds $KAFKA_VAR/.lock"
  fi
}

# ---------------------------------------------------------------- config + format
render_props() {
  local subst=(-e "s|@KAFKA_PORT@|$KAFKA_PORT|g"
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g"
    -e "s|@KAFKA_HOST@|$KAFKA_HOST|g"
    -e "s|@KAFKA_DATA_DIR@|$DATA_DIR|g")
  if [[ "$KAFKA_PROFILE" == secure ]]; then
    # the overlay's keys replace the base template's (one definition per key)
    (
      umask 077
      sed "${subst[@]}" "$HERE/server.properties.in" |
        awk -F= 'NR == FNR { if ($0 ~ /^[a-z]/) drop[$1] = 1; next } !($1 in drop)' \
          "$HERE/secure.properties.in" - >"$PROPS.tmp"
      sed "${subst[@]}" -e "s|@PKI_DIR@|$PKI_DIR|g" \
        -e "s|@KEYSTORE_PASSWORD@|$(secret keystore)|g" \
        -e "s|@ADMIN_PASSWORD@|$(secret admin)|g" \
        "$HERE/secure.properties.in" >>"$PROPS.tmp"
    )
  else
    sed "${subst[@]}" "$HERE/server.properties.in" >"$PROPS.tmp"
  fi
  mv "$PROPS.tmp" "$PROPS"
}

# ---------------------------------------------------------------- secure profile
# secret NAME: a random password kept in secrets/NAME (made once; hex, so no quoting issues).
secret() {
  local f="$SECRETS_DIR/$1"
  if [[ ! -s "$f" ]]; then
    (umask 077 && mkdir -p "$SECRETS_DIR" && openssl rand -hex 24 >"$f")
  fi
  cat "$f"
}

# make_pki: a local CA and a broker certificate (SAN 127.0.0.1/localhost, server + client
# auth: the same key serves the client listener and authenticates to the controller).
make_pki() {
  [[ -s "$PKI_DIR/broker.p12" && -s "$PKI_DIR/ca.pem" ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found: the secure profile makes its CA with it"
  local t0 ext
  t0="$(now)"
  (
    umask 077
    mkdir -p "$PKI_DIR"
    cd "$PKI_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=sendgate-local-ca" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=sendgate-kafka" \
      -keyout broker.key -out broker.csr
    ext="subjectAltName=IP:127.0.0.1,DNS:localhost"
    [[ "$KAFKA_HOST" =~ ^[0-9.]+$ && "$KAFKA_HOST" != 127.0.0.1 ]] && ext="$ext,IP:$KAFKA_HOST"
    [[ ! "$KAFKA_HOST" =~ ^[0-9.]+$ && "$KAFKA_HOST" != localhost ]] && ext="$ext,DNS:$KAFKA_HOST"
    printf '%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' \
      "$ext" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -sha256 -extfile broker.ext -out broker.pem
    openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key -certfile ca.pem \
      -out broker.p12.tmp -passout "file:$SECRETS_DIR/keystore"
    mv broker.p12.tmp broker.p12
    chmod 755 .
    chmod 644 ca.pem
  ) >"$KAFKA_VAR/pki.out" 2>&1 || { cat "$KAFKA_VAR/pki.out" >&2; die "making the local CA failed"; }
  log "made a local CA and the broker certificate in $PKI_DIR in $(elapsed "$t0") s"
}

# java_client_props USER: Java client settings (the probe, kafka-acls).
java_client_props() {
  cat <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$1" password="$(secret "$1")";
ssl.truststore.type=PEM
ssl.truststore.location=$PKI_DIR/ca.pem
EOF
}

# write_client_files: clients/USER.properties (librdkafka, for SENDGATE_KAFKA_CONFIG_FILE) and
# clients/USER.java.properties (Java tools' --command-config) for every user.
write_client_files() {
  local user
  (
    umask 077
    mkdir -p "$CLIENTS_DIR"
    for user in "${SECURE_USERS[@]}"; do
      cat >"$CLIENTS_DIR/$user.properties.tmp" <<EOF
# librdkafka settings of the sendgate user "$user" on the secure local broker (secret: mode 600)
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=$user
sasl.password=$(secret "$user")
ssl.ca.location=$PKI_DIR/ca.pem
EOF
      mv "$CLIENTS_DIR/$user.properties.tmp" "$CLIENTS_DIR/$user.properties"
      java_client_props "$user" >"$CLIENTS_DIR/$user.java.properties"
    done
  )
}

# scram_args: the --add-scram arguments of kafka-storage format, one per user.
scram_args() {
  local user
  for user in "${SECURE_USERS[@]}"; do
    printf -- '--add-scram\nSCRAM-SHA-512=[name=%s,password=%s]\n' "$user" "$(secret "$user")"
  done
}

# apply_acls: the plan of `sendgate acl plan`, applied by the admin user (idempotent).
apply_acls() {
  local py="${SENDGATE_PYTHON:-$HERE/../../.venv/bin/python}" t0
  [[ -x "$py" ]] || die "no Python with sendgate at $py to apply the ACLs (run \`make setup\` or set SENDGATE_PYTHON)"
  t0="$(now)"
  # only the admin file counts: SENDGATE_KAFKA_* from the caller's shell must not override it
  if ! env $(compgen -e | grep '^SENDGATE_KAFKA_' | sed 's/^/-u /') \
    SENDGATE_KAFKA_BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT" \
    SENDGATE_KAFKA_CONFIG_FILE="$CLIENTS_DIR/admin.properties" \
    "$py" -m streams.cli acl apply ${KAFKA_ACL_PREFIX:+--prefix "$KAFKA_ACL_PREFIX"} \
    >"$KAFKA_VAR/acl.out" 2>&1 9>&-; then
    cat "$KAFKA_VAR/acl.out" >&2
    die "applying the ACL plan failed"
  fi
  log "applied the ACL plan ($(tail -n 1 "$KAFKA_VAR/acl.out")) in $(elapsed "$t0") s"
}

new_cluster_id() {
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (22 chars), not starting with '-'.
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && ${#id} -eq 22 ]] && { echo "$id"; return; }
  done
}

format_if_needed() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  mkdir -p "$DATA_DIR"
  [[ -s "$CLUSTER_ID_FILE" ]] || new_cluster_id >"$CLUSTER_ID_FILE"
  local cid t0
  cid="$(cat "$CLUSTER_ID_FILE")"
  t0="$(now)"
  local scram=()
  [[ "$KAFKA_PROFILE" == secure ]] && mapfile -t scram < <(scram_args)
  if ! java -Xmx256m -Dlog4j2.configurationFile="$HERE/log4j2-tools.xml" -cp "$LIB/*" \
    kafka.tools.StorageTool format --cluster-id "$cid" --config "$PROPS" --ignore-formatted \
    "${scram[@]}" >"$KAFKA_VAR/format.out" 2>&1 9>&-; then
    cat "$KAFKA_VAR/format.out" >&2
    die "formatting $DATA_DIR failed"
  fi
  log "formatted $DATA_DIR (cluster id $cid) in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- commands
cmd_up() {
  lock
  local pid
  if pid="$(our_pid)"; then
    if [[ "$(running_listeners)" != "$(wanted_listeners)" ]]; then
      die "the broker of $KAFKA_VAR (pid $pid) runs with other listeners ($(running_listeners));" \
        "run \`kafka.sh down\` first, or use another SENDGATE_VAR"
    fi
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
      log "Kafka $KAFKA_VERSION already running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT — nothing to do"
      if [[ "$KAFKA_PROFILE" == secure ]]; then apply_acls; fi
      return 0
    fi
  fi
  need_java
  if [[ -z "${pid:-}" ]] && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    ensure_lib
    if probe; then
      log "a Kafka broker not started by this script is already running on $KAFKA_HOST:$KAFKA_PORT — using it"
      return 0
    fi
    die "port $KAFKA_HOST:$KAFKA_PORT is in use by something that does not answer as Kafka (set KAFKA_PORT)"
  fi
  if [[ -z "${pid:-}" ]] && port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
    die "controller port $KAFKA_HOST:$KAFKA_CONTROLLER_PORT is in use (set KAFKA_CONTROLLER_PORT)"
  fi
  ensure_lib
  local t0 deadline
  t0="$(now)"
  if [[ -z "${pid:-}" ]]; then
    rm -f "$PID_FILE"
    if [[ "$KAFKA_PROFILE" == secure ]]; then
      secret keystore >/dev/null
      make_pki
      write_client_files
    fi
    render_props
    format_if_needed
    log "starting Kafka $KAFKA_VERSION (KRaft broker+controller) on $KAFKA_HOST:$KAFKA_PORT" \
      "(controller $KAFKA_CONTROLLER_PORT), data $DATA_DIR, log $LOG_FILE"
    echo "==== $(date -Is) kafka.sh start ====" | tee -a "$LOG_FILE" >>"$OUT_FILE"
    # shellcheck disable=SC2086  # HEAP_OPTS is a list of JVM flags
    nohup setsid java $HEAP_OPTS "${JVM_OPTS[@]}" \
      -Dlog4j2.configurationFile="$HERE/log4j2.xml" -Dkafka.logs.dir="$KAFKA_VAR" \
      -cp "$LIB/*" kafka.Kafka "$PROPS" </dev/null >>"$OUT_FILE" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
  else
    log "broker pid $pid is up but not listening yet; waiting"
  fi
  deadline=$(($(date +%s) + START_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      show_tail 40
      die "the broker exited during start-up (see $LOG_FILE and $OUT_FILE)"
    fi
    if port_open "$KAFKA_HOST" "$KAFKA_PORT" && probe; then
      break
    fi
    if (($(date +%s) >= deadline)); then
      cat "$KAFKA_VAR/probe.out" >&2 2>/dev/null || true
      show_tail 40
      stop_pid "$pid" >&2
      die "the broker did not answer metadata on $KAFKA_HOST:$KAFKA_PORT within ${START_TIMEOUT}s (stopped it)"
    fi
    sleep 0.3
  done
  log "Kafka $KAFKA_VERSION ($KAFKA_PROFILE) ready on $KAFKA_HOST:$KAFKA_PORT (pid $pid) — start-up took $(elapsed "$t0") s"
  if [[ "$KAFKA_PROFILE" == secure ]]; then
    apply_acls
    log "clients: SENDGATE_KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT SENDGATE_KAFKA_CONFIG_FILE=$CLIENTS_DIR/<user>.properties" \
      "(users: ${SECURE_USERS[*]})"
  fi
}

stop_pid() {
  local pid="$1" sig="${2:-TERM}" deadline
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$(($(date +%s) + STOP_TIMEOUT))
  while alive "$pid"; do
    if (($(date +%s) >= deadline)); then
      log "broker pid $pid still alive after ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$(($(date +%s) + 10))
      while alive "$pid" && (($(date +%s) < deadline)); do sleep 0.1; done
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  wait_ports_closed
}

cmd_down() {
  lock
  local pid t0
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    log "Kafka is not running (no live broker started by kafka.sh in $KAFKA_VAR) — nothing to do"
    return 0
  fi
  t0="$(now)"
  stop_pid "$pid"
  log "stopped Kafka (pid $pid) in $(elapsed "$t0") s; data kept in $DATA_DIR"
}

cmd_kill9() {
  lock
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    log "Kafka is not running — nothing to kill"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  local deadline=$(($(date +%s) + 10))
  while alive "$pid" && (($(date +%s) < deadline)); do sleep 0.05; done
  rm -f "$PID_FILE"
  wait_ports_closed
  log "SIGKILLed Kafka (pid $pid); data kept, \`up\` recovers it"
}

cmd_status() {
  local pid
  if pid="$(our_pid)"; then
    if [[ "$(running_listeners)" != "$(wanted_listeners)" ]]; then
      log "running (pid $pid) with other listeners: $(running_listeners)"
    elif port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
      log "running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT, controller $KAFKA_CONTROLLER_PORT, data $DATA_DIR"
    else
      log "starting (pid $pid), $KAFKA_HOST:$KAFKA_PORT not listening yet"
    fi
    return 0
  fi
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    log "something not started by kafka.sh listens on $KAFKA_HOST:$KAFKA_PORT"
    return 0
  fi
  log "not running"
  return 3
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log yet at $LOG_FILE"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n 50 -F "$LOG_FILE"
  fi
  tail -n "${1:-100}" "$LOG_FILE"
}

cmd_reset() {
  cmd_down
  rm -rf "$DATA_DIR" "$CLUSTER_ID_FILE"
  log "deleted $DATA_DIR; the next \`up\` formats a new cluster"
}

case "${1:-}" in
  up | start) cmd_up ;;
  down | stop) cmd_down ;;
  restart) cmd_down && cmd_up ;;
  kill9 | kill) cmd_kill9 ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  reset) cmd_reset ;;
  resolve) need_java; ensure_lib; log "jars in $LIB" ;;
  *)
    echo "usage: $0 up|down|start|stop|restart|kill9|status|logs [-f|N]|reset|resolve" >&2
    exit 2
    ;;
esac
