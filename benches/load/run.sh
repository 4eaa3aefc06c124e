#!/usr/bin/env bash
# Load benchmark: `smtp serve` and `smtp send` beside the peers people would pick
# instead (Postfix's smtp-sink and smtp-source, aiosmtpd), and the memory of idle
# sessions. Issue 7, "Load benchmark"; the issue-5 figure too.
#
#   benches/load/run.sh [--runs N] [--messages M] [--issue5-messages M] [--idle N]
#                       [--quick] [--docs | --no-docs]
#
#   --runs N             runs of every measurement, interleaved (default 3, at least 1)
#   --messages M         messages per server and client run (default 100000)
#   --issue5-messages M  messages per issue-5 run (default 20000)
#   --idle N             idle sessions for the memory figure (default 10000)
#   --quick (or QUICK=1) 3 runs of 2000 messages, 1000 idle sessions, docs not written
#   --docs / --no-docs   write (or not) the load section of docs/performance.md; the
#                        default is to write it, except with --quick
#
# Everything listens on 127.0.0.1, on free ports. Every process started here is stopped
# here, by PID. The markdown section is always printed on stdout as well.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benches/load"
DOC="$ROOT/docs/performance.md"

RUNS=3
MESSAGES=100000
ISSUE5=20000
IDLE=10000
WRITE_DOCS=""
GIVEN=""
if [[ "${QUICK:-0}" != 0 ]]; then QUICK=1; else QUICK=0; fi

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --runs) RUNS="${2:?--runs N}"; shift 2 ;;
    --messages) MESSAGES="${2:?--messages M}"; GIVEN+=" messages"; shift 2 ;;
    --issue5-messages) ISSUE5="${2:?--issue5-messages M}"; GIVEN+=" issue5"; shift 2 ;;
    --idle) IDLE="${2:?--idle N}"; GIVEN+=" idle"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --docs) WRITE_DOCS=1; shift ;;
    --no-docs) WRITE_DOCS=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
done
if ((QUICK)); then
  # Quick sizes, except for those given on the command line.
  [[ "$GIVEN" == *messages* ]] || MESSAGES=2000
  [[ "$GIVEN" == *issue5* ]] || ISSUE5=2000
  [[ "$GIVEN" == *idle* ]] || IDLE=1000
  RUNS=$((RUNS < 3 ? 3 : RUNS))
  WRITE_DOCS="${WRITE_DOCS:-0}"
fi
WRITE_DOCS="${WRITE_DOCS:-1}"
for v in RUNS MESSAGES ISSUE5 IDLE; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: $v must be a positive integer" >&2; exit 64; }
done

SESSIONS=20
SIZE=4096
# Per-run limit: generous for the slowest peer (aiosmtpd, a few hundred msg/s).
RUN_TIMEOUT=$((120 + MESSAGES / 100))

log() { printf '[load %s] %s\n' "$(date -u +%T)" "$*" >&2; }

# ---------------------------------------------------------------- processes we own
PIDS=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/smtp-load.XXXXXX")"

stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (at most 10 s) until 127.0.0.1:$1 accepts connections while $2 is alive.
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$2" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Starts `smtp serve ARGS... --listen 127.0.0.1:0`; sets SERVE_PID and SERVE_PORT, or
# returns 1 with the reason in SERVE_ERR (the exit status and first stderr line).
start_serve() {
  local name="$1" i
  shift
  SERVE_PID="" SERVE_PORT="" SERVE_ERR=""
  : >"$WORK/$name.out"
  "$BIN" serve --listen 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for ((i = 0; i < 100; i++)); do
    SERVE_PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/$name.out")"
    [[ -n "$SERVE_PORT" ]] && return 0
    if ! kill -0 "$SERVE_PID" 2>/dev/null; then
      local rc=0
      wait "$SERVE_PID" || rc=$?
      forget_pid "$SERVE_PID"
      SERVE_ERR="exit $rc: $(head -n1 "$WORK/$name.err")"
      SERVE_PID=""
      return 1
    fi
    sleep 0.1
  done
  SERVE_ERR="no 'listening on' line within 10 s"
  return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- results
declare -A RATES=() CPU=() NOTE=() CMD=()
CLK_TCK="$(getconf CLK_TCK)"

median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
    if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# measure KEY COUNT SERVER_PID CHECK -- COMMAND...: runs COMMAND once, adds its msg/s
# (COUNT / wall time) to RATES[KEY] and the server's CPU seconds per 1000 messages to
# CPU[KEY]. CHECK=send also requires "0 failed" in the output (smtp send's own count).
measure() {
  local key="$1" count="$2" spid="$3" check="$4" rc=0 t0 t1 c0 c1
  shift 5
  c0="$(cpu_ticks "$spid")"
  t0="$(date +%s%N)"
  timeout --foreground "$RUN_TIMEOUT" "$@" >"$WORK/run.out" 2>"$WORK/run.err" || rc=$?
  t1="$(date +%s%N)"
  c1="$(cpu_ticks "$spid")"
  if ((rc == 0)) && [[ "$check" == send ]] && ! grep -q '^0 failed$' "$WORK/run.out"; then
    rc=1
  fi
  if ((rc != 0)); then
    NOTE[$key]="run failed (exit $rc): $(head -c 200 "$WORK/run.err" "$WORK/run.out" | tr '\n' ' ')"
    log "$key: FAILED (exit $rc)"
    return 0
  fi
  local rate cpu
  rate="$(awk -v n="$count" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')"
  cpu="$(awk -v t="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$count" 'BEGIN { printf "%.3f", t / hz * 1000 / n }')"
  RATES[$key]="${RATES[$key]:-} $rate"
  CPU[$key]="${CPU[$key]:-} $cpu"
  log "$key: $rate msg/s (server CPU $cpu s per 1000 messages)"
}

# ---------------------------------------------------------------- prerequisites
SINK_BIN="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
SOURCE_BIN="$(command -v smtp-source || echo /usr/sbin/smtp-source)"
command -v python3 >/dev/null || { echo "run.sh: python3 is needed" >&2; exit 69; }
command -v cargo >/dev/null || { echo "run.sh: cargo is needed" >&2; exit 69; }
[[ -x "$SOURCE_BIN" ]] || {
  echo "run.sh: Postfix's smtp-source is needed (Debian: apt-get install postfix)" >&2
  exit 69
}
HAVE_SINK=1 HAVE_AIO=1
[[ -x "$SINK_BIN" ]] || { HAVE_SINK=0; log "smtp-sink not found: its rows are skipped"; }
python3 -c 'import aiosmtpd' 2>/dev/null || {
  HAVE_AIO=0
  log "aiosmtpd not importable (pip install aiosmtpd): its row is skipped"
}

# Every idle session is a descriptor in the server and one in the client.
HARD_NOFILE="$(ulimit -Hn)"
[[ "$HARD_NOFILE" == unlimited ]] && HARD_NOFILE=1048576
WANT_NOFILE=$((IDLE + 1024))
ulimit -n "$((WANT_NOFILE < HARD_NOFILE ? WANT_NOFILE : HARD_NOFILE))"
if (($(ulimit -n) < WANT_NOFILE)); then
  IDLE=$(($(ulimit -n) - 1024))
  log "open-file limit $(ulimit -n): idle sessions reduced to $IDLE"
fi

log "building the release binary"
(cd "$ROOT" && cargo build --release --quiet -p smtp-cli)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/smtp"
[[ -x "$BIN" ]] || { echo "run.sh: $BIN not built" >&2; exit 70; }

# ---------------------------------------------------------------- servers
SERVE_OPTS=(--discard --log-level warn --no-tls --max-connections-per-ip 0)
start_serve tokio "${SERVE_OPTS[@]}" || { echo "run.sh: smtp serve: $SERVE_ERR" >&2; exit 70; }
P_TOKIO="$SERVE_PORT" PID_TOKIO="$SERVE_PID"
log "smtp serve (tokio) on $P_TOKIO"

P_BLOCK="" PID_BLOCK=""
if start_serve blocking "${SERVE_OPTS[@]}" --io blocking; then
  P_BLOCK="$SERVE_PORT" PID_BLOCK="$SERVE_PID"
  log "smtp serve --io blocking on $P_BLOCK"
else
  NOTE[srv_blocking]="not available: \`smtp serve --io blocking\` $SERVE_ERR"
  log "smtp serve --io blocking: $SERVE_ERR"
fi

P_SINK="" PID_SINK=""
if ((HAVE_SINK)); then
  P_SINK="$(free_port)"
  SINK_USER=()
  ((EUID == 0)) && SINK_USER=(-u nobody)
  "$SINK_BIN" "${SINK_USER[@]}" "127.0.0.1:$P_SINK" 1000 >"$WORK/sink.out" 2>&1 &
  PID_SINK=$!
  PIDS+=("$PID_SINK")
  wait_port "$P_SINK" "$PID_SINK" || { echo "run.sh: smtp-sink did not start" >&2; exit 70; }
  log "smtp-sink on $P_SINK"
fi

P_AIO="" PID_AIO=""
if ((HAVE_AIO)); then
  P_AIO="$(free_port)"
  python3 -m aiosmtpd -n -l "127.0.0.1:$P_AIO" -c aiosmtpd.handlers.Sink >"$WORK/aio.out" 2>&1 &
  PID_AIO=$!
  PIDS+=("$PID_AIO")
  wait_port "$P_AIO" "$PID_AIO" || { echo "run.sh: aiosmtpd did not start" >&2; exit 70; }
  log "aiosmtpd on $P_AIO"
fi

# Is the blocking client there? (It may still refuse with 64, "not available".)
SEND_BLOCKING=0
if [[ -n "$P_SINK" ]]; then
  rc=0
  timeout --foreground 30 "$BIN" send --io blocking --count 1 --server "127.0.0.1:$P_SINK" --starttls never \
    >"$WORK/probe.out" 2>"$WORK/probe.err" || rc=$?
  if ((rc == 0)); then
    SEND_BLOCKING=1
  else
    NOTE[cli_blocking]="not available: \`smtp send --io blocking\` exit $rc: $(head -n1 "$WORK/probe.err")"
    log "smtp send --io blocking: exit $rc"
  fi
fi

# ---------------------------------------------------------------- the runs
SRC=("$SOURCE_BIN" -d -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE")
SRC_NEW=("$SOURCE_BIN" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE")
SEND=("$BIN" send --count "$MESSAGES" --concurrency "$SESSIONS" --size "$SIZE" --starttls never)
SEND5=("$BIN" send --count "$ISSUE5" --concurrency "$SESSIONS" --starttls never)

CMD[srv]="smtp-source -d -s $SESSIONS -m $MESSAGES -l $SIZE 127.0.0.1:PORT"
CMD[srv_tokio]="smtp serve --listen 127.0.0.1:PORT --discard --log-level warn --no-tls --max-connections-per-ip 0"
CMD[srv_blocking]="${CMD[srv_tokio]} --io blocking"
CMD[srv_sink]="smtp-sink $( ((EUID == 0)) && echo '-u nobody ')127.0.0.1:PORT 1000"
CMD[srv_aio]="python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c aiosmtpd.handlers.Sink"
CMD[cli_send]="smtp send --count $MESSAGES --concurrency $SESSIONS --size $SIZE --server 127.0.0.1:PORT --starttls never"
CMD[cli_blocking]="${CMD[cli_send]} --io blocking"
CMD[cli_source_d]="smtp-source -d -s $SESSIONS -m $MESSAGES -l $SIZE 127.0.0.1:PORT"
CMD[cli_source]="smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE 127.0.0.1:PORT"
CMD[i5_tokio]="smtp send --count $ISSUE5 --concurrency $SESSIONS --server 127.0.0.1:PORT --starttls never"
CMD[i5_blocking]="${CMD[i5_tokio]} --io blocking"

LOAD_START="$(cut -d' ' -f1 /proc/loadavg)"
awk -v l="$LOAD_START" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }' &&
  log "load average $LOAD_START on $(nproc) CPUs: other work will disturb the figures"
for ((run = 1; run <= RUNS; run++)); do
  log "run $run of $RUNS: server"
  measure srv_tokio "$MESSAGES" "$PID_TOKIO" rc -- "${SRC[@]}" "127.0.0.1:$P_TOKIO"
  [[ -n "$P_BLOCK" ]] &&
    measure srv_blocking "$MESSAGES" "$PID_BLOCK" rc -- "${SRC[@]}" "127.0.0.1:$P_BLOCK"
  [[ -n "$P_SINK" ]] &&
    measure srv_sink "$MESSAGES" "$PID_SINK" rc -- "${SRC[@]}" "127.0.0.1:$P_SINK"
  [[ -n "$P_AIO" ]] &&
    measure srv_aio "$MESSAGES" "$PID_AIO" rc -- "${SRC[@]}" "127.0.0.1:$P_AIO"

  if [[ -n "$P_SINK" ]]; then
    log "run $run of $RUNS: client (against smtp-sink)"
    measure cli_send "$MESSAGES" "$PID_SINK" send -- "${SEND[@]}" --server "127.0.0.1:$P_SINK"
    ((SEND_BLOCKING)) &&
      measure cli_blocking "$MESSAGES" "$PID_SINK" send -- "${SEND[@]}" --server "127.0.0.1:$P_SINK" --io blocking
    measure cli_source_d "$MESSAGES" "$PID_SINK" rc -- "${SRC[@]}" "127.0.0.1:$P_SINK"
    measure cli_source "$MESSAGES" "$PID_SINK" rc -- "${SRC_NEW[@]}" "127.0.0.1:$P_SINK"
  fi

  log "run $run of $RUNS: issue 5 (smtp send against smtp serve)"
  measure i5_tokio "$ISSUE5" "$PID_TOKIO" send -- "${SEND5[@]}" --server "127.0.0.1:$P_TOKIO"
  [[ -n "$P_BLOCK" ]] && ((SEND_BLOCKING)) &&
    measure i5_blocking "$ISSUE5" "$PID_BLOCK" send -- "${SEND5[@]}" --server "127.0.0.1:$P_BLOCK" --io blocking
done
LOAD_END="$(cut -d' ' -f1 /proc/loadavg)"
[[ -n "$P_BLOCK" ]] && ! ((SEND_BLOCKING)) && NOTE[i5_blocking]="${NOTE[cli_blocking]:-}"
[[ -z "$P_BLOCK" ]] && NOTE[i5_blocking]="${NOTE[srv_blocking]}"

for pid in "$PID_TOKIO" "$PID_BLOCK" "$PID_SINK" "$PID_AIO"; do
  [[ -n "$pid" ]] && { stop_pid "$pid"; forget_pid "$pid"; }
done

# ---------------------------------------------------------------- idle sessions
log "idle: $IDLE sessions held open against a fresh smtp serve (tokio)"
IDLE_LINE="" IDLE_NOTE=""
IDLE_OPTS=("${SERVE_OPTS[@]}" --max-connections $((IDLE + 100)))
CMD[idle]="smtp serve --listen 127.0.0.1:PORT ${IDLE_OPTS[*]}"
if start_serve idle "${IDLE_OPTS[@]}"; then
  rc=0
  python3 "$HERE/idle.py" "$SERVE_PORT" "$SERVE_PID" "$IDLE" 300 >"$WORK/idle.out" 2>"$WORK/idle.err" || rc=$?
  IDLE_LINE="$(grep '^idle ' "$WORK/idle.out" || true)"
  ((rc == 0)) || IDLE_NOTE="idle.py exit $rc: $(head -n1 "$WORK/idle.err")"
  log "${IDLE_LINE:-idle: no figure} ${IDLE_NOTE}"
  stop_pid "$SERVE_PID"
  forget_pid "$SERVE_PID"
else
  IDLE_NOTE="smtp serve: $SERVE_ERR"
fi
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$IDLE_LINE"; }
IDLE_N="$(field N)" IDLE_BEFORE="$(field before_kib)" IDLE_AFTER="$(field after_kib)"
IDLE_PER="$(field per_conn_kib)"

# ---------------------------------------------------------------- report
med() { [[ -n "${RATES[$1]:-}" ]] && median ${RATES[$1]} || true; }
medcpu() { [[ -n "${CPU[$1]:-}" ]] && median ${CPU[$1]} || true; }
runs() { [[ -n "${RATES[$1]:-}" ]] && echo "${RATES[$1]# }" | sed 's/ /, /g' || echo "—"; }
ratio() {
  local a b
  a="$(med "$1")" b="$(med "$2")"
  [[ -n "$a" && -n "$b" ]] && awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f×", a / b }' || echo "—"
}
meets() { # meets VALUE OP LIMIT
  [[ -z "$1" || "$1" == "—" ]] && { echo "not measured"; return; }
  awk -v v="${1%×}" -v l="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? v >= l : v <= l; print ok ? "yes" : "**no**" }'
}
row() { # row KEY LABEL RATIO
  local m
  m="$(med "$1")"
  if [[ -n "$m" ]]; then
    printf '| %s | `%s` | %s | %s | %s | %s |\n' "$2" "${CMD[$1]}" "$m" "$(runs "$1")" "$(medcpu "$1")" "$3"
  else
    printf '| %s | `%s` | — | %s | — | — |\n' "$2" "${CMD[$1]}" "${NOTE[$1]:-not run}"
  fi
}

CPU_MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
MEM_GIB="$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (with local changes)' || true)"
POSTFIX_V="$(dpkg-query -W -f '${Version}' postfix 2>/dev/null || echo unknown)"
AIO_V="$( ((HAVE_AIO)) && python3 -m aiosmtpd --version 2>/dev/null | awk '{print $2}' || echo none)"
INVOCATION="benches/load/run.sh --runs $RUNS --messages $MESSAGES --issue5-messages $ISSUE5 --idle $IDLE"

SRV_SINK_RATIO="$(ratio srv_tokio srv_sink)"
CLI_D_RATIO="$(ratio cli_send cli_source_d)"
CLI_RATIO="$(ratio cli_send cli_source)"

section() {
  cat <<EOF
## Load benchmark

Regenerated by \`$INVOCATION\` (the section between the \`load\` markers belongs to
that script) on $(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$COMMIT\`$DIRTY.

Machine: $(nproc) CPUs (\`nproc\`), ${CPU_MODEL:-unknown CPU}, ${MEM_GIB} GiB, Linux $(uname -r);
rustc $(rustc --version | awk '{print $2}'), release build; Postfix $POSTFIX_V (smtp-sink,
smtp-source), aiosmtpd $AIO_V on $(python3 --version). Everything runs on 127.0.0.1 on this
one machine, so load generator and server share its CPUs. The 1-minute load average was
$LOAD_START just before the runs (other work on the machine) and $LOAD_END at their end
(including the runs' own processes).

msg/s is messages ÷ the load generator's wall time; the median of $RUNS runs, the
measurements interleaved (every row once, then again). "Server CPU" is the server's user +
system time per 1000 messages (from \`/proc/PID/stat\`). Ratios are our median ÷ the peer's.
When msg/s × that CPU time is well under one core, a run is bound by round trips and
wake-ups on the loopback, not by the server's work. Runs of a few thousand messages
(\`--quick\`) vary by 2× or more between runs on a small machine; only full-size runs are
recorded here.

### Server: \`$(echo "${CMD[srv]}")\`

$SESSIONS sessions in parallel, each sending its share of the messages (one recipient,
$SIZE-byte payload) over one connection; smtp-source does not pipeline.

| server | command | msg/s (median) | runs | server CPU s / 1000 msgs | smtp serve (tokio) ÷ this |
|---|---|---:|---|---:|---:|
$(row srv_tokio "smtp serve, tokio" "1.00×")
$(row srv_blocking "smtp serve, blocking" "$(ratio srv_tokio srv_blocking)")
$(row srv_sink "Postfix smtp-sink" "$SRV_SINK_RATIO")
$(row srv_aio "aiosmtpd (Sink handler)" "$(ratio srv_tokio srv_aio)")

### Client: against \`${CMD[srv_sink]}\`

\`smtp send\` pipelines MAIL/RCPT/DATA (RFC 2920) and reuses each connection; its messages
are $SIZE octets in all, smtp-source's have a $SIZE-byte payload after a few header lines.
\`smtp-source -d\` keeps its connections like \`smtp send\` does (the like-for-like
comparison); without \`-d\` it opens a new connection for every message. The CPU column is
the sink's.

| client | command | msg/s (median) | runs | sink CPU s / 1000 msgs | smtp send ÷ this |
|---|---|---:|---|---:|---:|
$(row cli_send "smtp send, tokio" "1.00×")
$(row cli_blocking "smtp send, blocking" "$(ratio cli_send cli_blocking)")
$(row cli_source_d "smtp-source -d" "$CLI_D_RATIO")
$(row cli_source "smtp-source" "$CLI_RATIO")

### Issue 5: \`smtp send\` against \`smtp serve --discard\`

| adapters | command | msg/s (median) | runs | server CPU s / 1000 msgs | |
|---|---|---:|---|---:|---:|
$(row i5_tokio "tokio → tokio" "")
$(row i5_blocking "blocking → blocking" "")

Server: \`${CMD[srv_tokio]}\`.

### Idle sessions

\`${CMD[idle]}\`, then \`python3 benches/load/idle.py PORT PID $IDLE\`: $IDLE connections,
each greeted and past EHLO, held open and idle; the server's VmRSS (\`/proc/PID/status\`)
before and with all of them open.

| sessions | VmRSS before | VmRSS with them | per idle session |
|---:|---:|---:|---:|
| ${IDLE_N:-—} | ${IDLE_BEFORE:-—} KiB | ${IDLE_AFTER:-—} KiB | ${IDLE_PER:-—} KiB |
$([[ -n "$IDLE_NOTE" ]] && printf '\nNote: %s\n' "$IDLE_NOTE")

### Targets (issue 7)

| target | measured | met |
|---|---:|---|
| server (tokio) ≥ 1.0× smtp-sink | $SRV_SINK_RATIO | $(meets "$SRV_SINK_RATIO" ">=" 1.0) |
| client ≥ 1.0× smtp-source (\`-d\`, connections kept) | $CLI_D_RATIO | $(meets "$CLI_D_RATIO" ">=" 1.0) |
| client ≥ 1.0× smtp-source (a connection per message) | $CLI_RATIO | $(meets "$CLI_RATIO" ">=" 1.0) |
| ≤ 16 KiB per idle session ($IDLE sessions) | ${IDLE_PER:-—} KiB | $(meets "${IDLE_PER:-}" "<=" 16) |
EOF
}

SECTION="$(section)"
printf '%s\n' "$SECTION"

if ((WRITE_DOCS)); then
  mkdir -p "$(dirname "$DOC")"
  if [[ ! -f "$DOC" ]]; then
    printf '# Performance\n\n<!-- load:begin -->\n<!-- load:end -->\n' >"$DOC"
  fi
  if ! grep -q '^<!-- load:begin -->$' "$DOC" || ! grep -q '^<!-- load:end -->$' "$DOC"; then
    printf '\n<!-- load:begin -->\n<!-- load:end -->\n' >>"$DOC"
  fi
  printf '%s\n' "$SECTION" >"$WORK/section.md"
  awk -v section="$WORK/section.md" '
    /^<!-- load:begin -->$/ { print; while ((getline line < section) > 0) print line; skip = 1; next }
    /^<!-- load:end -->$/ { skip = 0 }
    !skip { print }' "$DOC" >"$WORK/performance.md"
  cat "$WORK/performance.md" >"$DOC"
  log "wrote the load section of ${DOC#"$ROOT"/}"
else
  log "docs not written (--quick or --no-docs)"
fi
