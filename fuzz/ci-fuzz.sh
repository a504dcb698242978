#!/usr/bin/env bash
# ci-fuzz.sh BUILD_DIR SECONDS - the bounded fuzz stage of `make test` (and `make fuzz`).
#
# Configures BUILD_DIR like the `fuzz` preset (clang, libFuzzer, ASan + UBSan) if it is not
# configured yet, builds the fuzz targets and amm-replay, then runs each target for SECONDS
# seconds, one after the other, starting from a scratch copy of its corpus plus
# fuzz/regressions/<target> (the corpora in the tree are never modified).  Fails on any crash,
# leak, timeout or out-of-memory, and prints the amm-replay commands that print and replay
# the input.  Exit status: 0 clean, 1 a finding, 2 bad usage or build failure.
#   fuzz/ci-fuzz.sh build/fuzz 40        # what make test runs (5 targets x 40 s)
#   FUZZ_TARGETS="fuzz_ops" fuzz/ci-fuzz.sh build/fuzz 600
set -uo pipefail
BUILD=${1:-}
SECONDS_EACH=${2:-}
if [ -z "$BUILD" ] || ! [[ "$SECONDS_EACH" =~ ^[0-9]+$ ]]; then
    echo "usage: ci-fuzz.sh BUILD_DIR SECONDS" >&2
    exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
TARGETS=${FUZZ_TARGETS:-fuzz_ops fuzz_misuse fuzz_threads fuzz_trace fuzz_options}
JOBS=${FUZZ_BUILD_JOBS:-2}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    mkdir -p "$BUILD"
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DAMM_FUZZ=ON -DAMM_SANITIZE=address,undefined -DAMM_BUILD_TESTS=ON >"$BUILD/ci-fuzz-configure.log" 2>&1 ||
        { cat "$BUILD/ci-fuzz-configure.log"; echo "ci-fuzz: configure failed" >&2; exit 2; }
fi
if ! grep -q '^AMM_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt"; then
    echo "ci-fuzz: $BUILD is not a libFuzzer build (AMM_FUZZ=OFF); use a fresh directory such as build/fuzz" >&2
    exit 2
fi
# shellcheck disable=SC2086 # TARGETS is a list
cmake --build "$BUILD" -j"$JOBS" --target amm-replay $TARGETS || { echo "ci-fuzz: build failed" >&2; exit 2; }

RUN=$BUILD/fuzz-run
rm -rf "$RUN"
mkdir -p "$RUN"
REPLAY=$BUILD/fuzz/amm-replay
status=0
for t in $TARGETS; do
    mkdir -p "$RUN/$t/corpus" "$RUN/$t/artifacts"
    for d in "$SRC/fuzz/corpus/$t" "$SRC/fuzz/regressions/$t"; do
        [ -d "$d" ] && cp -r "$d/." "$RUN/$t/corpus/" 2>/dev/null
    done
    max_len=$(sed -n 's/^max_len *= *//p' "$SRC/fuzz/$t.options")
    echo "== $t: ${SECONDS_EACH}s from $(ls "$RUN/$t/corpus" | wc -l) inputs"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
        "$BUILD/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2560 \
        -max_len="${max_len:-1024}" -dict="$SRC/fuzz/$t.dict" -print_final_stats=1 \
        -artifact_prefix="$RUN/$t/artifacts/" "$RUN/$t/corpus" >"$RUN/$t/log" 2>&1
    rc=$?
    grep -E '^#[0-9]+ +DONE|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$RUN/$t/log" | sed 's/^/   /'
    artifact=$(ls "$RUN/$t/artifacts/" 2>/dev/null | head -1)
    if [ "$rc" -ne 0 ] || [ -n "$artifact" ]; then
        status=1
        echo "!! $t FAILED (exit $rc); the end of its log ($RUN/$t/log):"
        grep -E '^fuzz_[a-z]+:|AddressSanitizer|ERROR|FAULT|SUMMARY|Test unit written|replay:' "$RUN/$t/log" | head -20 | sed 's/^/   /'
        if [ -n "$artifact" ]; then
            a="$RUN/$t/artifacts/$artifact"
            case $t in
            fuzz_ops | fuzz_misuse | fuzz_threads) opt="--format raw --target $t" ;;
            fuzz_trace) opt="" ;;
            *) opt="" ;;
            esac
            echo "   input: $a"
            if [ "$t" = fuzz_options ]; then
                echo "   options string: $(head -c 300 "$a" | tr -d '\0')"
                echo "   reproduce: $BUILD/fuzz/$t $a"
            else
                echo "   print it:  $REPLAY print $a $opt"
                echo "   replay it: $REPLAY run $a $opt"
                echo "   reproduce: $BUILD/fuzz/$t $a"
            fi
            echo "   minimise:  $BUILD/fuzz/$t -minimize_crash=1 -runs=10000 $a"
            echo "   once fixed, keep it: cp $a $SRC/fuzz/regressions/$t/"
        fi
    fi
done
[ "$status" -eq 0 ] && echo "ci-fuzz: all targets ran ${SECONDS_EACH}s each with no finding"
exit $status
