#!/usr/bin/env bash
# Relay benchmark (issue 15): smtp-source -> relay (queue on disk, fsync) -> smtp-sink,
# with `smtp serve --transport` as the relay beside Postfix set up as a relay to the same
# smtp-sink, in the same run (recipe: ../shared/notes/postfix-as-a-relay.md; Postfix needs
# root). For each: messages per second end to end (from the first connection of
# smtp-source until the queue is empty), the relay's CPU per 1000 messages, and messages
# lost (accepted by the relay and not counted by smtp-sink: must be 0). Both relays may
# open 20 connections to the destination (Postfix: default_destination_concurrency_limit).
#
#   benches/load/relay.sh [--messages M] [--runs N]
#
# Everything listens on 127.0.0.1, on free ports; every process started here is stopped
# here. Prints a markdown table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MESSAGES=10000
RUNS=2
while (($#)); do
  case "$1" in
    --messages) MESSAGES="${2:?}"; shift 2 ;;
    --runs) RUNS="${2:?}"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "relay.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
SESSIONS=20
SIZE=4096
SINK="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
SOURCE="$(command -v smtp-source || echo /usr/sbin/smtp-source)"
[[ -x "$SINK" && -x "$SOURCE" ]] || { echo "relay.sh: Postfix's smtp-sink and smtp-source are needed" >&2; exit 69; }

log() { printf '[relay %s] %s\n' "$(date -u +%T)" "$*" >&2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/smtp-relay-bench.XXXXXX")"
chmod 755 "$WORK"
PIDS=()
POSTFIX_CONF=""
cleanup() {
  local pid
  [[ -n "$POSTFIX_CONF" ]] && postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1 || true
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [[ -n "${ALT_ADDED:-}" ]] && sed -i '/^alternate_config_directories = /d' /etc/postfix/main.cf
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { local i; for ((i = 0; i < 200; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK="$(getconf CLK_TCK)"

log "building smtp (release)"
cargo build --release -q -p smtp-cli --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/smtp"

# smtp-sink: counts what it gets (-c prints a running counter), accepts everything.
start_sink() {
  SINK_PORT="$(free_port)"
  "$SINK" -c -u root "127.0.0.1:$SINK_PORT" 256 >"$WORK/sink.out" 2>&1 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  wait_port "$SINK_PORT"
}
# smtp-sink -c writes "sess=N quit=N mesg=N" lines (CR-separated, buffered until it
# exits): stop it, then read its last count.
sink_count() {
  kill -TERM "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  tr '\r' '\n' <"$WORK/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n1
}

declare -A RATE CPU LOST
run_ours() {
  start_sink
  local port dir pid t0 t1 c0 c1
  port="$(free_port)"
  dir="$WORK/ours-queue"
  rm -rf "$dir"
  "$BIN" serve --listen "127.0.0.1:$port" --no-tls --log-level warn --maildir "$WORK/ours-md" \
    --queue-dir "$dir" --relay-network 127.0.0.0/8 --relay-tls never \
    --destination-concurrency 20 \
    --transport "dest.test=127.0.0.1:$SINK_PORT" >"$WORK/ours.out" 2>"$WORK/ours.err" &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  c0="$(ticks "$pid")"
  t0="$(date +%s%N)"
  "$SOURCE" -s "$SESSIONS" -l "$SIZE" -m "$MESSAGES" -f sender@origin.test -t rcpt@dest.test "127.0.0.1:$port" >/dev/null
  # Until the queue is empty (every message sent on and removed).
  while [[ "$("$BIN" queue list --queue-dir "$dir" --json)" != "[]" ]]; do sleep 0.05; done
  t1="$(date +%s%N)"
  c1="$(ticks "$pid")"
  sleep 0.3
  local got; got="$(sink_count)"
  RATE[ours]+=" $(awk -v n="$MESSAGES" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')"
  CPU[ours]+=" $(awk -v t="$((c1 - c0))" -v hz="$CLK" -v n="$MESSAGES" 'BEGIN { printf "%.3f", t / hz * 1000 / n }')"
  LOST[ours]+=" $((MESSAGES - ${got:-0}))"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  log "ours: $(echo "${RATE[ours]}" | awk '{print $NF}') msg/s, sink got ${got:-0}"
}

setup_postfix() {
  local d="$WORK/postfix"
  mkdir -p "$d/conf" "$d/queue" "$d/data"
  cp /etc/postfix/master.cf /etc/postfix/postfix-files "$d/conf/"
  [[ -d /etc/postfix/postfix-files.d ]] && cp -r /etc/postfix/postfix-files.d "$d/conf/"
  cp /etc/postfix/dynamicmaps.cf* "$d/conf/" 2>/dev/null || true
  chown postfix "$d/data"
  PF_PORT="$(free_port)"
  cat >"$d/conf/main.cf" <<CONF
queue_directory = $d/queue
data_directory = $d/data
meta_directory = $d/conf
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:SINKPORT
smtp_tls_security_level = none
smtpd_tls_security_level = none
alias_maps =
alias_database =
smtputf8_enable = no
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_destination_concurrency_limit = 20
default_process_limit = 100
maillog_file = $d/maillog
maillog_file_prefixes = /var, /dev/stdout, $WORK
compatibility_level = 3.6
CONF
  sed -i "s/^smtp      inet.*/127.0.0.1:$PF_PORT inet n - n - - smtpd/" "$d/conf/master.cf"
  # chroot off for every service.
  awk 'BEGIN{OFS=" "} /^[a-z].* (unix|inet|fifo|pass) / && NF >= 8 { $5 = "n" } { print }' "$d/conf/master.cf" >"$d/conf/master.cf.new"
  mv "$d/conf/master.cf.new" "$d/conf/master.cf"
  if ! grep -q "^alternate_config_directories = " /etc/postfix/main.cf 2>/dev/null; then
    echo "alternate_config_directories = $d/conf" >>/etc/postfix/main.cf
    ALT_ADDED=1
  fi
  POSTFIX_DIR="$d"
}

run_postfix() {
  start_sink
  sed -i "s/^relayhost = .*/relayhost = [127.0.0.1]:$SINK_PORT/" "$POSTFIX_DIR/conf/main.cf"
  rm -rf "$POSTFIX_DIR/queue"/*
  postfix -c "$POSTFIX_DIR/conf" start >/dev/null 2>&1
  POSTFIX_CONF="$POSTFIX_DIR/conf"
  wait_port "$PF_PORT"
  local c0 c1 t0 t1
  # Postfix is many processes: the master's own CPU and that of the children it has
  # reaped (cutime, cstime), plus the children still running.
  cpu_all() {
    local master s p
    master="$(cat "$POSTFIX_DIR/queue/pid/master.pid" 2>/dev/null | tr -d ' ')"
    s="$(awk '{print $14 + $15 + $16 + $17}' "/proc/$master/stat" 2>/dev/null || echo 0)"
    for p in $(pgrep -P "$master"); do s=$((s + $(ticks "$p"))); done
    echo "$s"
  }
  c0="$(cpu_all)"
  t0="$(date +%s%N)"
  "$SOURCE" -s "$SESSIONS" -l "$SIZE" -m "$MESSAGES" -f sender@origin.test -t rcpt@dest.test "127.0.0.1:$PF_PORT" >/dev/null
  while ! postqueue -c "$POSTFIX_DIR/conf" -p 2>/dev/null | grep -q "Mail queue is empty"; do sleep 0.05; done
  t1="$(date +%s%N)"
  c1="$(cpu_all)"
  sleep 0.3
  local got; got="$(sink_count)"
  RATE[postfix]+=" $(awk -v n="$MESSAGES" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')"
  CPU[postfix]+=" $(awk -v t="$((c1 - c0))" -v hz="$CLK" -v n="$MESSAGES" 'BEGIN { printf "%.3f", t / hz * 1000 / n }')"
  LOST[postfix]+=" $((MESSAGES - ${got:-0}))"
  postfix -c "$POSTFIX_DIR/conf" stop >/dev/null 2>&1 || true
  POSTFIX_CONF=""
  sleep 1
  log "postfix: $(echo "${RATE[postfix]}" | awk '{print $NF}') msg/s, sink got ${got:-0}"
}

median() { printf '%s\n' $@ | sort -g | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

HAVE_POSTFIX=0
if [[ "$(id -u)" == 0 ]] && command -v postfix >/dev/null; then setup_postfix; HAVE_POSTFIX=1; else log "not root or no postfix: its row is skipped"; fi
for ((r = 1; r <= RUNS; r++)); do
  run_ours
  ((HAVE_POSTFIX)) && run_postfix
done

echo "| relay ($MESSAGES messages of $SIZE octets, $SESSIONS sessions, $RUNS runs, medians) | msg/s end to end | relay CPU s / 1000 msg | lost |"
echo "|---|---:|---:|---:|"
echo "| \`smtp serve --transport\` → smtp-sink | $(median ${RATE[ours]}) | $(median ${CPU[ours]}) | $(echo ${LOST[ours]} | tr ' ' '+' | bc) |"
if ((HAVE_POSTFIX)); then
  echo "| Postfix $(postconf -d mail_version 2>/dev/null | awk '{print $3}') relayhost → smtp-sink | $(median ${RATE[postfix]}) | $(median ${CPU[postfix]}) | $(echo ${LOST[postfix]} | tr ' ' '+' | bc) |"
  awk -v a="$(median ${RATE[ours]})" -v b="$(median ${RATE[postfix]})" 'BEGIN { printf "\nours ÷ Postfix, end-to-end rate: %.2f×\n", a / b }'
fi
