#!/usr/bin/env bash
# test_replay.sh AMM_REPLAY FUZZ_DIR - amm-replay's command-line tests (CTest: amm_replay_cli).
#
# Each case is a named function; run one with: test_replay.sh AMM_REPLAY FUZZ_DIR case_name.
# Checks exit codes (0 clean, 1 fault, 2 unreadable/usage), that errors are
# clear one-liners naming the problem, that a fault names its op, and that
# print | run round-trips.
set -u
REPLAY=${1:?usage: test_replay.sh AMM_REPLAY FUZZ_DIR [case...]}
FUZZ_DIR=${2:?usage: test_replay.sh AMM_REPLAY FUZZ_DIR [case...]}
shift 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/amm-replay-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=0

# expect CODE PATTERN CMD...: runs CMD, requires exit CODE and PATTERN (grep -E) in stdout+stderr.
expect() {
    local code=$1 pattern=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -Eq -- "$pattern" <<<"$out"; then
        echo "FAIL: $* -> exit $rc (want $code), output must match /$pattern/:"
        sed 's/^/    /' <<<"$out" | head -20
        return 1
    fi
}

malformed_files_exit_2() {
    printf 'alloc slot=0 size=8\nalocc slot=1\n' >"$WORK/typo.txt"
    printf 'alloc slot=x\n' >"$WORK/badvalue.txt"
    printf 'free slot=0 size=3\n' >"$WORK/badfield.txt"
    printf 'alloc slot=99999999999999999999\n' >"$WORK/overflow.txt"
    printf 'AMMTRACE' >"$WORK/short.trace"
    { printf 'AMMTRACE\x63\x00\x00\x00'; head -c 52 /dev/zero; } >"$WORK/major.trace"
    head -c 300 /dev/urandom | { printf 'AMMTRACE'; cat; } >"$WORK/garbage.trace"
    expect 2 "line 2: unknown op 'alocc'" "$REPLAY" run "$WORK/typo.txt" &&
        expect 2 "line 1: bad value for slot" "$REPLAY" run "$WORK/badvalue.txt" &&
        expect 2 "free takes no field 'size'" "$REPLAY" print "$WORK/badfield.txt" &&
        expect 2 "bad value for slot" "$REPLAY" run "$WORK/overflow.txt" &&
        expect 2 "unreadable trace: .*offset" "$REPLAY" run "$WORK/short.trace" &&
        expect 2 "unreadable trace" "$REPLAY" print "$WORK/major.trace" &&
        expect 2 "cannot open" "$REPLAY" run "$WORK/does-not-exist" &&
        expect 2 "Is a directory" "$REPLAY" run "$WORK" &&
        { "$REPLAY" run "$WORK/garbage.trace" >/dev/null 2>&1; [ $? -le 2 ]; }
}

bad_usage_exit_2() {
    expect 2 "no command" "$REPLAY" &&
        expect 2 "unknown command 'frobnicate'" "$REPLAY" frobnicate x &&
        expect 2 "run needs a FILE" "$REPLAY" run &&
        expect 2 "unknown option '--bogus'" "$REPLAY" run x --bogus &&
        expect 2 "--check-every needs a number" "$REPLAY" run x --check-every ten &&
        expect 2 "unknown target" "$REPLAY" run x --target fuzz_nothing &&
        expect 0 "exit status: 0 clean, 1 fault found" "$REPLAY" --help
}

bad_options_exit_2() {
    printf 'alloc slot=0 size=8\n' >"$WORK/ok.txt"
    expect 2 "bad manager options" "$REPLAY" run "$WORK/ok.txt" --options "canary=banana"
}

fault_names_the_op() {
    # scribble damages a block behind the model's back: the next check of that block must catch it.
    printf 'alloc slot=0 size=100 align=16\nalloc slot=1 size=8\nscribble slot=0 k=50\nfree slot=1\nfree slot=0\n' \
        >"$WORK/scribble.txt"
    expect 1 "FAULT at op #4: slot 0 .* byte 50 is" "$REPLAY" run "$WORK/scribble.txt" --check-every 0 &&
        expect 1 "op: #4 free slot=0" "$REPLAY" run "$WORK/scribble.txt" --check-every 0 &&
        expect 1 "FAULT at op #2: .*byte 50" "$REPLAY" run "$WORK/scribble.txt" --check-every 1
}

raw_input_and_encode() {
    # encode/print/run of raw bytes; encode refuses ops with no byte form for the target.
    printf 'alloc slot=3 size=40 align=8\nfree slot=3\nalloc slot=3 size=40 align=8\n' >"$WORK/clean.txt"
    printf 'alloc slot=0 size=10\nscribble slot=0 k=1\n' >"$WORK/scribble.txt"
    "$REPLAY" encode "$WORK/clean.txt" "$WORK/clean.bin" --target fuzz_ops || return 1
    expect 0 "^clean: 3 ops" "$REPLAY" run "$WORK/clean.bin" --target fuzz_ops &&
        expect 0 "^#2 alloc slot=3 size=40 align=8" "$REPLAY" print "$WORK/clean.bin" --format raw &&
        expect 2 "scribble has no byte form" "$REPLAY" encode "$WORK/scribble.txt" "$WORK/x.bin" --target fuzz_misuse &&
        expect 2 "overflow has no byte form for this target" \
            "$REPLAY" encode "$FUZZ_DIR/seeds/fuzz_misuse/faults.txt" "$WORK/y.bin" --target fuzz_ops
}

clean_list_exit_0() {
    local f
    for f in "$FUZZ_DIR"/seeds/fuzz_ops/*.txt "$FUZZ_DIR"/seeds/fuzz_misuse/*.txt; do
        expect 0 "^clean: " "$REPLAY" run "$f" || return 1
    done
}

print_run_round_trip() {
    local f name
    for f in "$FUZZ_DIR"/seeds/fuzz_ops/*.txt "$FUZZ_DIR"/seeds/fuzz_misuse/*.txt; do
        name=$(basename "$f" .txt)
        "$REPLAY" encode "$f" "$WORK/$name.bin" --target fuzz_misuse || return 1
        "$REPLAY" print "$WORK/$name.bin" --target fuzz_misuse | grep -v '^//' >"$WORK/$name.1.txt" || return 1
        "$REPLAY" print "$WORK/$name.1.txt" | grep -v '^//' >"$WORK/$name.2.txt" || return 1
        if ! cmp -s "$WORK/$name.1.txt" "$WORK/$name.2.txt"; then
            echo "FAIL: print of the bytes and print of that text differ for $name:"
            diff "$WORK/$name.1.txt" "$WORK/$name.2.txt" | head
            return 1
        fi
        "$REPLAY" run "$WORK/$name.bin" --target fuzz_misuse >"$WORK/$name.run1" 2>&1
        "$REPLAY" run "$WORK/$name.1.txt" >"$WORK/$name.run2" 2>&1
        if ! cmp -s "$WORK/$name.run1" "$WORK/$name.run2" || ! grep -q '^clean' "$WORK/$name.run1"; then
            echo "FAIL: run of the bytes and run of the printed text differ for $name"
            cat "$WORK/$name.run1" "$WORK/$name.run2"
            return 1
        fi
    done
}

json_print() {
    expect 0 '^\{"format":"text","count":12,"ops":\[' "$REPLAY" print "$FUZZ_DIR/seeds/fuzz_ops/basic.txt" --json &&
        expect 0 '\{"n":1,"op":"alloc","slot":1,"size":100,"align":64,"flags":"zero"\}' \
            "$REPLAY" print "$FUZZ_DIR/seeds/fuzz_ops/basic.txt" --json
}

stats_command() {
    expect 0 "pool_alloc +8" "$REPLAY" stats "$FUZZ_DIR/seeds/fuzz_ops/pools.txt" &&
        expect 0 "ext_frag" "$REPLAY" stats "$FUZZ_DIR/seeds/fuzz_ops/defrag.txt"
}

trace_round_trip() {
    # run --trace writes a trace; that trace, replayed, is clean and has the same allocations.
    local f="$FUZZ_DIR/seeds/fuzz_ops/basic.txt"
    "$REPLAY" run "$f" --trace "$WORK/basic.trace" >/dev/null || return 1
    [ -s "$WORK/basic.trace" ] || { echo "FAIL: --trace wrote nothing"; return 1; }
    expect 0 "^clean: " "$REPLAY" run "$WORK/basic.trace" &&
        expect 0 "^#0 alloc slot=0 size=24 align=16" "$REPLAY" print "$WORK/basic.trace"
}

CASES=(malformed_files_exit_2 bad_usage_exit_2 bad_options_exit_2 fault_names_the_op raw_input_and_encode
    clean_list_exit_0 print_run_round_trip json_print stats_command trace_round_trip)
[ $# -gt 0 ] && CASES=("$@")
for c in "${CASES[@]}"; do
    if "$c"; then
        echo "ok   $c"
    else
        echo "FAIL $c"
        FAILED=1
    fi
done
exit $FAILED
