#!/bin/sh
# run-demo.sh BUILD_DIR - what `make run` does.
#
# With a display: starts amm-viz listening on a Unix socket and runs amm-demo
# --slow streaming its trace live into it (AMM_OPTIONS=trace=unix:...); close
# the window (or press q) to finish.
# Without one: records the demo to BUILD_DIR/../run/demo.trace and renders
# PNG snapshots of key moments headless into that directory.
set -eu
build=${1:-build/release}
viz="$build/viz/amm-viz"
demo="$build/lib/amm-demo"
for exe in "$viz" "$demo"; do
    if [ ! -x "$exe" ]; then
        echo "run-demo: $exe is not built (run: make build, or cmake --build $build)" >&2
        exit 1
    fi
done
out="$(dirname "$build")/run"
mkdir -p "$out"
opts="sample_every=32"

if "$viz" --check-display 2>/dev/null; then
    sock="${TMPDIR:-/tmp}/amm-viz-$$.sock"
    "$viz" --listen "$sock" &
    viz_pid=$!
    trap 'kill "$viz_pid" 2>/dev/null || true; rm -f "$sock"' INT TERM
    i=0
    while [ ! -S "$sock" ]; do
        i=$((i + 1))
        if [ $i -gt 250 ] || ! kill -0 "$viz_pid" 2>/dev/null; then
            echo "run-demo: amm-viz did not start" >&2
            exit 1
        fi
        sleep 0.02
    done
    echo "run-demo: streaming amm-demo live into amm-viz (close the window or press q to finish; ? for keys)"
    AMM_OPTIONS="trace=unix:$sock,$opts" "$demo" --slow || echo "run-demo: amm-demo failed" >&2
    wait "$viz_pid" || true
    exit 0
fi

echo "run-demo: no display; recording the demo and rendering snapshots headless"
trace="$out/demo.trace"
rm -f "$trace"
AMM_OPTIONS="trace=file:$trace,$opts" "$demo" >"$out/demo.log" 2>&1 || {
    echo "run-demo: amm-demo failed:" >&2
    cat "$out/demo.log" >&2
    exit 1
}
# amm-demo writes a CHECK record (amm_check) at each key moment: 1 seed step 7,
# 4 buffers shared, 6 churn (peak fragmentation), 7 faults, 8 compaction.
shot() {
    "$viz" --headless --screenshot "$out/$1.png" --at "$2" $3 "$trace" >/dev/null || exit 1
    echo "  $out/$1.png  $4"
}
echo "run-demo: snapshots:"
shot 1-seed check:1 "" "the seed's example at its step 7 (pools, realloc, copy)"
shot 2-shared check:4 "--colour refcount" "shared buffers, coloured by refcount"
shot 3-fragmented check:6 "" "after the churn: peak fragmentation"
shot 4-faults check:7 "" "after the overflow and the double free (red marks, log)"
shot 5-compacted check:8 "" "after amm_defragment(AMM_DEFRAG_ALL): movable blocks slid down"
echo "run-demo: trace in $trace (replay: $viz $trace --paused), demo output in $out/demo.log"
