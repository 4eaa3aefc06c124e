#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) with the seed corpora and the
# dictionary, on the stable toolchain (`-s none`: no sanitizer), and fails if any target
# crashes, hangs or stops building. Usage: fuzz/run-all.sh [SECONDS] [TARGET...]
#
# Seeds live in fuzz/seeds/<target>/ (committed); the working corpus in
# fuzz/corpus/<target>/ (ignored by git) starts from them and keeps what the runs find.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p target
if ! cargo fuzz build -s none >target/fuzz-build.log 2>&1; then
    tail -40 target/fuzz-build.log
    echo "fuzz targets do not build"
    exit 1
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cp -n "seeds/$t/"* "corpus/$t/" 2>/dev/null || true
    log="target/fuzz-$t.log"
    printf '%-18s ' "$t"
    if cargo fuzz run -s none "$t" "corpus/$t" -- \
        -max_total_time="$secs" -dict=smtp.dict -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        echo "ok: ${execs:-?} executions, ${speed:-?}/s"
    else
        echo "FAILED (see fuzz/$log and fuzz/artifacts/$t/)"
        grep -m1 -A5 -E "panicked|ERROR: libFuzzer" "$log" || tail -20 "$log"
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${secs}s without a crash"
