#!/usr/bin/env bash
# gen_corpus.sh AMM_REPLAY [FUZZ_BUILD_DIR] - regenerates fuzz/corpus/<target>/ from fuzz/seeds/.
#
# The seeds are readable: text op lists (seeds/fuzz_ops, seeds/fuzz_misuse,
# seeds/fuzz_threads) and option strings (seeds/fuzz_options).  To add a case,
# write a .txt there and run this script:
#   fuzz_ops      every seeds/fuzz_ops/*.txt, encoded (amm-replay encode)
#   fuzz_misuse   seeds/fuzz_ops + seeds/fuzz_misuse, encoded with the misuse ops
#   fuzz_threads  seeds/fuzz_ops + seeds/fuzz_threads, encoded
#   fuzz_trace    the trace of replaying each op seed (amm-replay run --trace),
#                 plus a truncated copy and a damaged copy of one of them
#   fuzz_options  seeds/fuzz_options/*.txt as they are
# With FUZZ_BUILD_DIR (a libFuzzer build, e.g. build/fuzz), each corpus is
# then minimised with -merge=1 (only inputs that add coverage are kept).
set -euo pipefail
REPLAY=${1:?usage: gen_corpus.sh AMM_REPLAY [FUZZ_BUILD_DIR]}
FUZZ_BUILD=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
SEEDS=$HERE/seeds
CORPUS=$HERE/corpus

encode_into() { # encode_into TARGET SEED_DIR...
    local target=$1 dir f
    shift
    for dir in "$@"; do
        for f in "$SEEDS/$dir"/*.txt; do
            "$REPLAY" encode "$f" "$CORPUS/$target/$dir-$(basename "$f" .txt)" --target "$target"
        done
    done
}

traces_into() {
    local f name tmp
    tmp=$(mktemp -d)
    for f in "$SEEDS"/fuzz_ops/*.txt "$SEEDS"/fuzz_misuse/*.txt; do
        name=$(basename "$f" .txt)
        "$REPLAY" run "$f" --quiet --trace "$tmp/$name.trace" >/dev/null
        cp "$tmp/$name.trace" "$CORPUS/fuzz_trace/$name"
    done
    f=$(ls "$CORPUS"/fuzz_trace/* | head -1)
    head -c $(($(wc -c <"$f") - 13)) "$f" >"$CORPUS/fuzz_trace/truncated"
    # flip one byte inside the first chunk (after the 64-byte header and 32-byte chunk header)
    cp "$f" "$CORPUS/fuzz_trace/damaged"
    printf '\xff' | dd of="$CORPUS/fuzz_trace/damaged" bs=1 seek=120 conv=notrunc status=none
    rm -rf "$tmp"
}

minimise() {
    local target=$1 bin="$FUZZ_BUILD/fuzz/$1"
    [ -x "$bin" ] || { echo "gen_corpus: no $bin, $target not minimised" >&2; return 0; }
    rm -rf "$CORPUS/$target.min"
    mkdir "$CORPUS/$target.min"
    "$bin" -merge=1 "$CORPUS/$target.min" "$CORPUS/$target" 2>/dev/null
    # libFuzzer names the kept inputs by their SHA-1: give them back their readable names.
    local f h
    for f in "$CORPUS/$target"/*; do
        h=$(sha1sum "$f" | cut -d' ' -f1)
        if [ -f "$CORPUS/$target.min/$h" ]; then mv "$CORPUS/$target.min/$h" "$CORPUS/$target.min/$(basename "$f")"; fi
    done
    rm -rf "$CORPUS/${target:?}"
    mv "$CORPUS/$target.min" "$CORPUS/$target"
}

for t in fuzz_ops fuzz_misuse fuzz_threads fuzz_trace fuzz_options; do
    rm -rf "${CORPUS:?}/$t"
    mkdir -p "$CORPUS/$t"
done
encode_into fuzz_ops fuzz_ops
encode_into fuzz_misuse fuzz_ops fuzz_misuse
encode_into fuzz_threads fuzz_ops fuzz_threads
traces_into
for f in "$SEEDS"/fuzz_options/*.txt; do cp "$f" "$CORPUS/fuzz_options/$(basename "$f" .txt)"; done
if [ -n "$FUZZ_BUILD" ]; then
    for t in fuzz_ops fuzz_misuse fuzz_threads fuzz_trace fuzz_options; do minimise "$t"; done
fi
for t in fuzz_ops fuzz_misuse fuzz_threads fuzz_trace fuzz_options; do
    echo "corpus/$t: $(ls "$CORPUS/$t" | wc -l) inputs"
done
