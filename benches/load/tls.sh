#!/usr/bin/env bash
# TLS figures (issue 14, goal 6): msg/s of `smtp send --starttls required` into
# `smtp serve` with TLS (its self-signed certificate) beside the same without TLS
# (`--starttls never` into the same server), and the server's resident memory per idle
# session after STARTTLS beside one idle after EHLO (benches/load/idle.py). Prints a
# markdown section.
#
#   benches/load/tls.sh [--runs N] [--messages M] [--idle N] [BIN]
#
# BIN is the `smtp` binary (default: target/release/smtp, built if missing). Everything
# listens on 127.0.0.1 on free ports; every process started here is stopped here, by PID.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS=3
MESSAGES=20000
IDLE=2000
while (($#)); do
  case "$1" in
    --runs) RUNS="${2:?--runs N}"; shift 2 ;;
    --messages) MESSAGES="${2:?--messages M}"; shift 2 ;;
    --idle) IDLE="${2:?--idle N}"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) BIN="$1"; shift ;;
  esac
done
BIN="${BIN:-$ROOT/target/release/smtp}"
[[ -x "$BIN" ]] || (cd "$ROOT" && cargo build --release -q -p smtp-cli)
log() { printf '[tls %s] %s\n' "$(date -u +%T)" "$*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/smtp-tls.XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# smtp serve lowers --max-connections to what its open-file limit allows (a few
# descriptors a session); the client needs one a session.
HARD="$(ulimit -Hn)"
[[ "$HARD" == unlimited ]] && HARD=1048576
ulimit -n "$((HARD < IDLE * 4 + 1024 ? HARD : IDLE * 4 + 1024))"

# Starts `smtp serve ARGS... --listen 127.0.0.1:0`; sets PID and PORT.
serve() {
  local i
  : >"$WORK/serve.out"
  "$BIN" serve --listen 127.0.0.1:0 "$@" >>"$WORK/serve.out" 2>"$WORK/serve.err" &
  PID=$!
  PIDS+=("$PID")
  for ((i = 0; i < 100; i++)); do
    PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/serve.out")"
    [[ -n "$PORT" ]] && return 0
    sleep 0.1
  done
  echo "tls.sh: smtp serve did not start: $(head -n1 "$WORK/serve.err")" >&2
  exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PIDS=(); }
median() { printf '%s\n' $1 | sort -g | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

SERVER=(--discard --log-level warn --max-connections-per-ip 0 --max-connections $((IDLE + 100)))
serve "${SERVER[@]}"
declare -A RATE=()
for ((run = 1; run <= RUNS; run++)); do
  for mode in never required; do
    t0="$(date +%s%N)"
    "$BIN" send --count "$MESSAGES" --concurrency 20 --size 4096 --server "127.0.0.1:$PORT" \
      --starttls "$mode" --insecure >"$WORK/send.out" 2>&1 ||
      { echo "tls.sh: smtp send --starttls $mode failed: $(head -c 300 "$WORK/send.out")" >&2; exit 1; }
    t1="$(date +%s%N)"
    grep -q '^0 failed$' "$WORK/send.out" || { echo "tls.sh: messages failed: $(cat "$WORK/send.out")" >&2; exit 1; }
    r="$(awk -v n="$MESSAGES" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }')"
    RATE[$mode]+=" $r"
    log "run $run, --starttls $mode: $r msg/s"
  done
done
stop

declare -A IDLE_KIB=()
for mode in plain starttls; do
  serve "${SERVER[@]}"
  flag=()
  [[ "$mode" == starttls ]] && flag=(--starttls)
  python3 "$ROOT/benches/load/idle.py" "${flag[@]}" "$PORT" "$PID" "$IDLE" 300 >"$WORK/idle.out" ||
    { echo "tls.sh: idle.py failed: $(cat "$WORK/idle.out")" >&2; exit 1; }
  IDLE_KIB[$mode]="$(sed -n 's/.*per_conn_kib=\([0-9.]*\).*/\1/p' "$WORK/idle.out")"
  log "idle $mode: $(cat "$WORK/idle.out")"
  stop
done

plain="$(median "${RATE[never]}")"
tls="$(median "${RATE[required]}")"
cat <<EOF
### TLS

\`smtp serve --listen 127.0.0.1:PORT ${SERVER[*]}\` (rustls, its self-signed
certificate), fed by \`smtp send --count $MESSAGES --concurrency 20 --size 4096 --server
127.0.0.1:PORT --starttls MODE --insecure\` on the same machine; msg/s is messages ÷ the
client's wall time, the median of $RUNS runs, the two modes interleaved. Each of the 20
connections runs STARTTLS once and then carries its share of the messages.

| \`--starttls\` | msg/s (median) | runs | ÷ without TLS |
|---|---:|---|---:|
| never | $plain | $(echo ${RATE[never]} | sed 's/ /, /g') | 1.00× |
| required | $tls | $(echo ${RATE[required]} | sed 's/ /, /g') | $(awk -v a="$tls" -v b="$plain" 'BEGIN { printf "%.2f", a / b }')× |

Idle sessions, $IDLE of them (\`python3 benches/load/idle.py [--starttls] PORT PID $IDLE\`):
resident memory per session after EHLO, and after EHLO, STARTTLS and EHLO again.

| session | per idle session |
|---|---:|
| plain, after EHLO | ${IDLE_KIB[plain]} KiB |
| after STARTTLS | ${IDLE_KIB[starttls]} KiB |
EOF
