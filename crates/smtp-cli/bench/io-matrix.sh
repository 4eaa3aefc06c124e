#!/usr/bin/env bash
# `smtp send` against `smtp serve --discard` for the four --io combinations:
#
#     cargo build --release -p smtp-cli
#     bash crates/smtp-cli/bench/io-matrix.sh [RUNS] [COUNT] [CONCURRENCY] [SIZE]
#
# Defaults: 3 runs of 20000 messages of 4096 octets over 20 connections, plain SMTP.
# Prints each run's msg/s, then the median per combination (client x server).
set -euo pipefail
runs=${1:-3} count=${2:-20000} conc=${3:-20} size=${4:-4096}
smtp="$(cd "$(dirname "$0")/../../.." && pwd)/target/release/smtp"
[ -x "$smtp" ] || { echo "build first: cargo build --release -p smtp-cli" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for server_io in tokio blocking; do
  "$smtp" serve --io "$server_io" --discard --no-tls --log-level warn \
    --listen 127.0.0.1:0 >"$out/listen-$server_io" 2>"$out/serve.log" &
  pid=$!
  until grep -q "^listening on " "$out/listen-$server_io" 2>/dev/null; do sleep 0.05; done
  addr=$(sed -n "s/^listening on //p" "$out/listen-$server_io")
  for client_io in tokio blocking; do
    rates=()
    for _ in $(seq "$runs"); do
      line=$("$smtp" send --io "$client_io" --count "$count" --concurrency "$conc" \
        --size "$size" --starttls never --server "$addr" | sed -n 1p)
      rate=$(sed -n 's/.*(\([0-9.]*\) msg\/s)$/\1/p' <<<"$line")
      echo "client $client_io, server $server_io: $line"
      rates+=("$rate")
    done
    median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
    echo "median client=$client_io server=$server_io: $median msg/s"
  done
  kill -TERM "$pid"
  wait "$pid"
done
