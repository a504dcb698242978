#!/bin/sh
# headless_cli.sh AMM_VIZ AMM_DEMO OUTDIR - amm-viz on a recorded amm-demo
# trace without a display: screenshots at key moments, the model dump, and
# bad input of every kind (damaged, truncated, not a trace, bad options),
# which must give a clear message and an exit status, never a crash.
set -u
viz=$1 demo=$2 out=$3
mkdir -p "$out"
trace="$out/demo.trace"
fails=0
fail() { echo "headless_cli: FAIL: $*"; fails=$((fails + 1)); }

rm -f "$trace"
AMM_OPTIONS="trace=file:$trace,sample_every=32" "$demo" >"$out/demo.log" 2>&1 || fail "amm-demo failed"
[ -s "$trace" ] || { echo "headless_cli: no trace recorded"; exit 1; }

# after the faults (CHECK 7): both faults in the model, a PNG written
"$viz" --headless --screenshot "$out/faults.png" --at check:7 --dump "$trace" >"$out/faults.txt" 2>&1 ||
    fail "amm-viz --at check:7 failed: $(cat "$out/faults.txt")"
grep -q "faults 2 anomalies 0" "$out/faults.txt" || fail "dump after the faults: $(grep "^model:" "$out/faults.txt")"
[ "$(od -An -tx1 -N8 "$out/faults.png" | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "faults.png is not a PNG"

# after compaction (CHECK 8): no quarantine left, the heap is compacted
"$viz" --headless --dump --at check:8 "$trace" >"$out/compacted.txt" 2>&1 || fail "amm-viz --at check:8 failed"
grep -q "quarantined 0 " "$out/compacted.txt" || fail "dump after compaction: $(head -1 "$out/compacted.txt")"

# the end of the trace: the manager is gone, the model empty
"$viz" --headless --dump "$trace" >"$out/end.txt" 2>&1 || fail "amm-viz to the end failed"
grep -q "live 0 (0 B)" "$out/end.txt" || fail "dump at the end: $(head -1 "$out/end.txt")"

# --at by record number gives the same state as the CHECK it names
model_line() { grep "^model:" "$1" | head -1; }
seq=$(model_line "$out/faults.txt" | grep -o "last seq [0-9]*" | grep -o "[0-9]*$")
"$viz" --headless --dump --at "$seq" "$trace" >"$out/byseq.txt" 2>&1 || fail "amm-viz --at $seq failed"
[ "$(model_line "$out/byseq.txt")" = "$(model_line "$out/faults.txt")" ] || fail "--at $seq differs from --at check:7"

# keys through the script, as the window gets them: from the seed's step 7, f jumps to just
# after the first fault; left steps one record back (before it); c cycles the colour mode
"$viz" --headless --dump --at check:1 --script "key f" "$trace" >"$out/keyf.txt" 2>&1 || fail "key f failed"
grep -q "faults 1 " "$out/keyf.txt" || fail "key f: $(grep "^model:" "$out/keyf.txt")"
"$viz" --headless --dump --at check:1 --script "key f;key left;key c;screenshot $out/keys.png" "$trace" \
    >"$out/keyleft.txt" 2>&1 || fail "key left failed"
grep -q "faults 0 " "$out/keyleft.txt" || fail "key f, left: $(grep "^model:" "$out/keyleft.txt")"
[ -s "$out/keys.png" ] || fail "the scripted screenshot was not written"

# stdin works like a file
"$viz" --headless --dump --at check:7 - <"$trace" >"$out/stdin.txt" 2>&1 || fail "reading stdin failed"
[ "$(model_line "$out/stdin.txt")" = "$(model_line "$out/faults.txt")" ] || fail "stdin and file disagree"

# a live pipe from the traced program (trace=fd:3)
AMM_OPTIONS="trace=fd:3,sample_every=32" "$demo" 3>&1 >/dev/null 2>&1 | "$viz" --headless --dump --at check:7 - \
    >"$out/pipe.txt" 2>&1 || fail "reading a pipe failed"
grep -q "faults 2 anomalies 0" "$out/pipe.txt" || fail "pipe: $(grep "^model:" "$out/pipe.txt")"

# a truncated trace (cut mid-record): read up to the cut, no crash
size=$(wc -c <"$trace")
head -c $((size / 2 + 13)) "$trace" >"$out/cut.trace"
"$viz" --headless --dump "$out/cut.trace" >"$out/cut.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "truncated trace: exit $rc: $(cat "$out/cut.txt")"
grep -q "^model: events [1-9]" "$out/cut.txt" || fail "truncated trace: nothing read"

# a damaged trace (bytes overwritten in the middle): resync, report the offset, no crash
cp "$trace" "$out/damaged.trace"
printf 'XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX' |
    dd of="$out/damaged.trace" bs=1 seek=$((size / 3)) conv=notrunc 2>/dev/null
"$viz" --headless --screenshot "$out/damaged.png" --dump "$out/damaged.trace" >"$out/damaged.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "damaged trace: exit $rc: $(cat "$out/damaged.txt")"
grep -qi "offset\|damag\|crc" "$out/damaged.txt" || fail "damaged trace: no message naming the damage: $(cat "$out/damaged.txt")"

# not a trace at all: a clear error, exit 1
"$viz" --headless --dump "$out/demo.log" >"$out/notrace.txt" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "not a trace: exit $rc, want 1"
grep -q "amm-viz: " "$out/notrace.txt" || fail "not a trace: no message: $(cat "$out/notrace.txt")"

# a missing file
"$viz" --headless --dump "$out/no-such-file" >"$out/missing.txt" 2>&1
grep -q "cannot open" "$out/missing.txt" || fail "missing file: $(cat "$out/missing.txt")"

# bad options: exit 2 with a message
for args in "--at" "--at check:0 $trace" "--size 10x10 $trace" "--colour pink $trace" "--bogus $trace" \
            "--headless $trace" "--script dance $trace" "$trace $trace"; do
    # shellcheck disable=SC2086
    "$viz" $args >"$out/bad.txt" 2>&1
    rc=$?
    [ $rc -eq 2 ] || fail "amm-viz $args: exit $rc, want 2"
    grep -q "amm-viz: " "$out/bad.txt" || fail "amm-viz $args: no message"
done
# --at past the end of the trace
"$viz" --headless --dump --at check:99 "$trace" >"$out/past.txt" 2>&1
[ $? -eq 1 ] && grep -q "fewer than 99" "$out/past.txt" || fail "--at check:99: $(cat "$out/past.txt")"

if [ $fails -ne 0 ]; then
    echo "headless_cli: $fails failures (outputs in $out)"
    exit 1
fi
echo "headless_cli: ok"
