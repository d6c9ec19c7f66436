#!/bin/sh
# End-to-end check of the printer against the real ipvsadm, in the kernel lab:
# for every table file in DIR (written by `cargo run -p ipvs-rs --example gen_tables --
# DIR COUNT [SEED]`, i.e. our `ipvsadm -S -n` output), restore it with `ipvsadm -R` in a
# fresh network namespace and save it again with `ipvsadm -S -n`: the result must be
# the file, byte for byte. Prints one line per table and a summary.
#
#   cargo run -p ipvs-rs --example gen_tables -- /tmp/ipvs-tables 200
#   cargo lab run -- ipvs/tests/ipvsadm/restore_check.sh /tmp/ipvs-tables
set -u
dir="$1"
ok=0
bad=0
for f in "$dir"/*.txt; do
    ns="rc-$$"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    err=$(ip netns exec "$ns" ipvsadm -R < "$f" 2>&1)
    out=$(ip netns exec "$ns" ipvsadm -S -n)
    ip netns del "$ns"
    if [ -z "$err" ] && [ "$out" = "$(cat "$f")" ]; then
        ok=$((ok + 1))
    else
        bad=$((bad + 1))
        echo "DIFF $(basename "$f")"
        [ -n "$err" ] && echo "  ipvsadm -R: $err"
        echo "$out" | diff "$f" - | sed 's/^/  /'
    fi
done
echo "restore_check: $ok identical, $bad different"
[ "$bad" -eq 0 ]
