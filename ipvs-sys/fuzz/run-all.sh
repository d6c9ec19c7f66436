#!/bin/sh
# Run every fuzz target for $1 executions (default 1000000), optimised with
# debug assertions and overflow checks (-O -a), starting from
# the seeds (derived from tests/vectors); logs go to logs/<target>.log.
set -eu
cd "$(dirname "$0")"
runs=${1:-1000000}
mkdir -p logs corpus
for t in decode_replies decode_message decode_service decode_dest decode_daemon decode_stats decode_info decode_dest_dump; do
    mkdir -p "corpus/$t"
    cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a "$t" "corpus/$t" -- -runs="$runs" -max_len=4096 \
        > "logs/$t.log" 2>&1
    tail -n 3 "logs/$t.log"
done
