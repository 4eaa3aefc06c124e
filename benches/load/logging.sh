#!/usr/bin/env bash
# What logging costs: `smtp serve` at its default level (info), at warn and at debug, with
# --discard and with Maildir storage (fsync), beside Postfix's smtp-sink, all fed by the
# same `smtp-source -d -s 20 -m M -l 4096` (issue 14, goal 5; 20 connections kept). The log goes to a file, as an
# operator's would. Prints a markdown table: the server's CPU seconds per 1000 messages
# (user + system, /proc/PID/stat), median of the runs, interleaved, and each ÷ smtp-sink's
# in the same runs.
#
#   benches/load/logging.sh [--runs N] [--messages M] [BIN]
#
# BIN is the `smtp` binary (default: target/release/smtp, built if missing). Every process
# started here is stopped here, by PID.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS=3
MESSAGES=20000
while (($#)); do
  case "$1" in
    --runs) RUNS="${2:?--runs N}"; shift 2 ;;
    --messages) MESSAGES="${2:?--messages M}"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) BIN="$1"; shift ;;
  esac
done
BIN="${BIN:-$ROOT/target/release/smtp}"
[[ -x "$BIN" ]] || (cd "$ROOT" && cargo build --release -q -p smtp-cli)
SINK="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
SOURCE="$(command -v smtp-source || echo /usr/sbin/smtp-source)"
[[ -x "$SOURCE" && -x "$SINK" ]] || { echo "logging.sh: Postfix's smtp-sink and smtp-source are needed" >&2; exit 69; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/smtp-logging.XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"

# name|command (PORT is replaced)
ROWS=(
  "smtp serve --discard (info, the default)|$BIN serve --listen 127.0.0.1:PORT --discard --no-tls"
  "smtp serve --discard --log-level warn|$BIN serve --listen 127.0.0.1:PORT --discard --no-tls --log-level warn"
  "smtp serve --discard --log-level debug|$BIN serve --listen 127.0.0.1:PORT --discard --no-tls --log-level debug"
  "smtp serve --maildir (info; fsync)|$BIN serve --listen 127.0.0.1:PORT --maildir $WORK/maildir --no-tls"
  "Postfix smtp-sink|$SINK -u nobody 127.0.0.1:PORT 1000"
)
declare -A CPU=() LINES=()
for ((run = 1; run <= RUNS; run++)); do
  for i in "${!ROWS[@]}"; do
    port="$(free_port)"
    cmd="${ROWS[$i]#*|}"
    rm -rf "$WORK/maildir"
    ${cmd//PORT/$port} >"$WORK/out" 2>"$WORK/log" &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" || { echo "logging.sh: ${ROWS[$i]%%|*} did not start" >&2; exit 1; }
    c0="$(cpu_ticks "$pid")"
    "$SOURCE" -d -s 20 -m "$MESSAGES" -l 4096 "127.0.0.1:$port" >"$WORK/source" 2>&1 ||
      { echo "logging.sh: smtp-source failed against ${ROWS[$i]%%|*}: $(head -c 300 "$WORK/source")" >&2; exit 1; }
    c1="$(cpu_ticks "$pid")"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    PIDS=()
    CPU[$i]+=" $(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$MESSAGES" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
    LINES[$i]="$(awk -v l="$(wc -l <"$WORK/log")" -v n="$MESSAGES" 'BEGIN { printf "%.2f", l / n }')"
    echo "[logging] run $run: ${ROWS[$i]%%|*}: ${CPU[$i]##* } ms / 1000 msgs" >&2
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
sink="$(median "${CPU[4]}")"
echo "| server | CPU ms / 1000 msgs (median) | runs | ÷ smtp-sink | log lines / message |"
echo "|---|---:|---|---:|---:|"
for i in "${!ROWS[@]}"; do
  m="$(median "${CPU[$i]}")"
  printf '| %s | %s | %s | %.2f× | %s |\n' "${ROWS[$i]%%|*}" "$m" "$(echo ${CPU[$i]} | sed 's/ /, /g')" \
    "$(echo "scale=4; $m / $sink" | bc)" "${LINES[$i]}"
done
