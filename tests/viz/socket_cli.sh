#!/bin/sh
# socket_cli.sh AMM_VIZ AMM_DEMO SOCK_WRITER OUTDIR - amm-viz --listen (headless)
# takes three writers one after the other: one that dies in the middle of a
# record, one sending a damaged stream, one sending a whole trace.  The viewer
# must survive all three, count the damage, and end showing the last stream.
set -u
viz=$1 demo=$2 writer=$3 out=$4
mkdir -p "$out"
trace="$out/demo.trace"
rm -f "$trace"
AMM_OPTIONS="trace=file:$trace" "$demo" >"$out/demo.log" 2>&1 || { echo "socket_cli: amm-demo failed"; exit 1; }
size=$(wc -c <"$trace")
cp "$trace" "$out/damaged.trace"
printf 'ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ' |
    dd of="$out/damaged.trace" bs=1 seek=$((size / 3)) conv=notrunc 2>/dev/null

. "$(dirname "$0")/listen_lib.sh"
viz_listen socket_cli "$out/viz.log" --headless --dump --screenshot "$out/last.png" --script "wait-streams 3;quit"
"$writer" "$sock" "$trace" $((size / 2 + 13)) || exit 1 # dies mid-record
"$writer" "$sock" "$out/damaged.trace" || exit 1
"$writer" "$sock" "$trace" || exit 1
status=0
wait "$viz_pid" || status=$?
trap - EXIT INT TERM
cat "$out/viz.log" | cut -c1-300 | grep -v "^  "
fails=0
fail() { echo "socket_cli: FAIL: $*"; fails=$((fails + 1)); }
[ "$status" -eq 0 ] || fail "amm-viz exited with $status"
[ ! -e "$sock" ] || fail "the socket file was left behind"
grep -q "amm-viz: 3 streams" "$out/viz.log" || fail "three streams not seen"
grep -q " [1-9][0-9]* damaged (last at byte [1-9]" "$out/viz.log" || fail "the damage was not counted with its offset"
grep -q "^model: .* live 0 (0 B) .* anomalies 0" "$out/viz.log" || fail "the last stream was not shown whole and clean"
[ -s "$out/last.png" ] || fail "no screenshot"

# pause on fault (key p) holds a live stream right after its first fault
viz_listen socket_pause "$out/pause.log" --headless --dump --script "key p;wait-paused;quit"
"$writer" "$sock" "$trace" 2>/dev/null # the viewer may close before the writer is done
status=0
wait "$viz_pid" || status=$?
trap - EXIT INT TERM
rm -f "$sock"
[ "$status" -eq 0 ] || fail "pause on fault: amm-viz exited with $status"
grep -q "^model: .* faults 1 " "$out/pause.log" || fail "pause on fault: $(grep "^model:" "$out/pause.log")"
[ $fails -eq 0 ] || exit 1
echo "socket_cli: ok"
