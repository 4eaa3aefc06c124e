#!/usr/bin/env bash
# Instruction counts of every codec workload in benches/examples/profile.rs, ours beside
# Stalwart's smtp-proto 0.2.5, under callgrind (deterministic: the same on a loaded
# machine). Prints the table of docs/performance.md: thousands of instructions per pass
# over the fixture, the fixture set-up (the count for 0 passes) subtracted.
# Usage: benches/callgrind.sh [PROFILE-BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
    CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo build --release -q -p smtp-benches --example profile
    bin=target/release/examples/profile
fi
count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
    sed -n 's/^totals: *//p; s/^summary: *//p' "$out" | head -1
    rm -f "$out"
}
base=$(count commands 0)
per_pass() { printf "%.1f" "$(echo "scale=3; ($(count "$1" "$2") - $base) / $2 / 1000" | bc)"; }
echo "| work | passes | smtp-proto (k) | Stalwart (k) | Stalwart ÷ ours |"
echo "|---|---:|---:|---:|---:|"
while read -r ours peer passes what; do
    a=$(per_pass "$ours" "$passes")
    b=$(per_pass "$peer" "$passes")
    printf '| %s (`%s`) | %s | %s | %s | %.2f× |\n' "$what" "$ours" "$passes" "$a" "$b" \
        "$(echo "scale=4; $b / $a" | bc)"
done <<'LIST'
commands commands-stalwart 20 20-command session ×50, whole
commands-1460 commands-1460-stalwart 20 the same in 1460-octet reads
commands-7 commands-7-stalwart 10 the same in 7-octet reads
server-commands server-commands-stalwart 10 server machine, 852 pipelined commands, 1460-octet reads (peer: RequestReceiver alone)
ehlo ehlo-stalwart 200 12-line EHLO reply
replies replies-stalwart 20 10 single-line replies ×10
data data-stalwart 50 DATA, 64 KiB body, copied into a Vec
data-zero-copy data-stalwart 50 DATA, 64 KiB body, zero-copy (peer copies)
data-dots data-dots-stalwart 20 DATA, 64 KiB of dot lines, copied
data-dots-zero-copy data-dots-stalwart 20 DATA, dot lines, zero-copy (peer copies)
LIST
