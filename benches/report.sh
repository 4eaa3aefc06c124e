#!/usr/bin/env bash
# One source for every figure: runs the benchmarks and writes their sections of
# docs/performance.md, each between its markers (`<!-- NAME:begin -->` and
# `<!-- NAME:end -->`), leaving the text around them alone. The README quotes none of
# these figures itself; it points here.
#
#   benches/report.sh [--quick] [SECTION...]
#
# Sections, in the order they are run (all of them without SECTION):
#   callgrind  instruction counts of the codec, ours beside Stalwart (benches/callgrind.sh)
#   criterion  wall time of the codec benches (cargo bench -p smtp-benches, benches/report.py)
#   load       smtp serve / smtp send beside smtp-sink, smtp-source, aiosmtpd, and idle
#              memory (benches/load/run.sh, which writes its own section)
#   logging    CPU per message at each log level, --discard and Maildir, beside smtp-sink
#              (benches/load/logging.sh)
#   tls        msg/s with STARTTLS and memory per idle TLS session (benches/load/tls.sh)
#   relay      smtp serve as a relay beside Postfix (benches/load/relay.sh; needs root)
#
# --quick runs every section at small sizes (for trying the script, not for the record).
# Wall-time figures need a quiet machine: run this when `uptime` shows a low load.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOC="$ROOT/docs/performance.md"
QUICK=0
SECTIONS=()
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    callgrind | criterion | load | logging | tls | relay) SECTIONS+=("$a") ;;
    *) echo "report.sh: unknown section $a (see --help)" >&2; exit 64 ;;
  esac
done
((${#SECTIONS[@]})) || SECTIONS=(callgrind criterion load logging tls relay)
cd "$ROOT"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/smtp-report.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log() { printf '[report %s] %s\n' "$(date -u +%T)" "$*" >&2; }

COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates benches || echo ' with local changes')"
machine() {
  local cpu mem
  cpu="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  mem="$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "$(nproc) CPUs ($cpu), $mem, Linux $(uname -r), $(rustc --version | cut -d' ' -f1-2)"
}
stamp() {
  echo "Written by \`benches/report.sh$( ((QUICK)) && echo ' --quick')\` on $(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$COMMIT\`;"
  echo "$(machine); 1-minute load average $(cut -d' ' -f1 /proc/loadavg) before the run."
}

# put NAME FILE: replaces the text between NAME's markers in $DOC with FILE (appends the
# markers at the end when missing).
put() {
  local name="$1" file="$2"
  if ! grep -q "^<!-- $name:begin -->$" "$DOC" || ! grep -q "^<!-- $name:end -->$" "$DOC"; then
    printf '\n<!-- %s:begin -->\n<!-- %s:end -->\n' "$name" "$name" >>"$DOC"
  fi
  awk -v section="$file" -v b="<!-- $name:begin -->" -v e="<!-- $name:end -->" '
    $0 == b { print; while ((getline line < section) > 0) print line; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$DOC" >"$WORK/doc"
  cat "$WORK/doc" >"$DOC"
  log "wrote the $name section of docs/performance.md"
}

for s in "${SECTIONS[@]}"; do
  out="$WORK/$s.md"
  case "$s" in
    callgrind)
      log "callgrind (a few minutes)"
      {
        echo "### Instruction counts (callgrind)"
        echo
        stamp
        echo "Thousands of instructions per pass over the fixture (\`benches/callgrind.sh\`: every"
        echo "workload of \`benches/examples/profile.rs\` under callgrind, the fixture set-up"
        echo "subtracted). Deterministic: the same on a loaded machine."
        echo
        benches/callgrind.sh
      } >"$out"
      put callgrind "$out"
      ;;
    criterion)
      log "criterion (long)"
      args=()
      ((QUICK)) && args=(-- --warm-up-time 1 --measurement-time 1)
      cargo bench -q -p smtp-benches --bench codec "${args[@]}" >"$WORK/bench.log" 2>&1
      {
        echo "### Criterion (wall time)"
        echo
        stamp
        echo "\`cargo bench -p smtp-benches --bench codec\` then \`python3 benches/report.py\`: medians;"
        echo "MB/s is 10^6 octets per second. On a loaded machine only the ratios to the peer in"
        echo "the same group mean much."
        python3 benches/report.py
      } >"$out"
      put criterion "$out"
      ;;
    load)
      log "load (run.sh writes its own section)"
      if ((QUICK)); then benches/load/run.sh --quick --docs >/dev/null; else benches/load/run.sh >/dev/null; fi
      ;;
    logging)
      log "logging"
      args=(--runs 3 --messages 20000)
      ((QUICK)) && args=(--runs 1 --messages 2000)
      {
        echo "### Logging"
        echo
        stamp
        echo
        echo "What logging costs (issue 14, goal 5): \`benches/load/logging.sh ${args[*]}\`: each server"
        echo "fed by \`smtp-source -d -s 20 -m M -l 4096\` (20 connections kept, one recipient), its"
        echo "log written to a file; the server's user + system CPU per 1000 messages, median of the"
        echo "runs (interleaved), and ÷ smtp-sink's in the same runs. Target: the default level"
        echo "(info) with \`--discard\` at most 0.75× smtp-sink."
        echo
        benches/load/logging.sh "${args[@]}"
      } >"$out"
      put logging "$out"
      ;;
    tls)
      log "tls"
      args=(--runs 3 --messages 20000 --idle 2000)
      ((QUICK)) && args=(--runs 1 --messages 2000 --idle 500)
      { stamp; echo; echo "\`benches/load/tls.sh ${args[*]}\`."; echo; benches/load/tls.sh "${args[@]}"; } >"$out"
      # The heading comes first.
      { sed -n '/^### TLS/,$p' "$out" | sed -n '1,2p'; sed -n '1,2p' "$out"; sed -n '/^### TLS/,$p' "$out" | sed '1,2d'; } >"$WORK/tls2.md"
      put tls "$WORK/tls2.md"
      ;;
    relay)
      log "relay"
      args=()
      ((QUICK)) && args=(--runs 1 --messages 1000)
      {
        echo "### Relay"
        echo
        stamp
        echo
        benches/load/relay.sh "${args[@]}"
      } >"$out"
      put relay "$out"
      ;;
  esac
done
