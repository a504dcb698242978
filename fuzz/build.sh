#!/bin/bash -eu
# build.sh - builds libamm and every fuzz target the OSS-Fuzz way.
#
# Honours $CC, $CFLAGS (sanitizer and coverage flags, e.g. -fsanitize=address,fuzzer-no-link),
# $LIB_FUZZING_ENGINE (e.g. -fsanitize=fuzzer, or AFL++'s libAFLDriver.a), $OUT (binaries go
# there) and $WORK (scratch).  Outside OSS-Fuzz the defaults build libFuzzer + ASan + UBSan
# binaries with clang into build/oss-fuzz/out.  For each target it writes $OUT/<target>,
# $OUT/<target>.dict, $OUT/<target>.options and $OUT/<target>_seed_corpus.zip (from
# fuzz/corpus/<target> and fuzz/regressions/<target>).
# With AFL++ (Debian's afl++ package; checked with 4.04c):
#   CC=afl-clang-fast CXX=afl-clang-fast++ CFLAGS="-O1 -g" LIB_FUZZING_ENGINE=/usr/lib/afl/libAFLDriver.a \
#     OUT=build/afl fuzz/build.sh
#   afl-fuzz -i fuzz/corpus/fuzz_ops -o build/afl/findings -- build/afl/fuzz_ops    (input on stdin: no @@)
SRC=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-clang}
CFLAGS=${CFLAGS:--O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fsanitize=fuzzer-no-link}
LIB_FUZZING_ENGINE=${LIB_FUZZING_ENGINE:--fsanitize=fuzzer}
OUT=${OUT:-$SRC/build/oss-fuzz/out}
WORK=${WORK:-$SRC/build/oss-fuzz/work}
TARGETS="fuzz_ops fuzz_misuse fuzz_threads fuzz_trace fuzz_options"
STD="-std=c11 -DAMM_EXPENSIVE_CHECKS=0 -DAMM_HAVE_VALGRIND_H=0"

mkdir -p "$OUT" "$WORK/obj"
rm -f "$WORK"/obj/*.o "$WORK/libamm_fuzz.a"
for f in "$SRC"/lib/src/*.c; do
    # shellcheck disable=SC2086 # CFLAGS is a list of flags
    $CC $CFLAGS $STD -I"$SRC/lib/include" -I"$SRC/lib/src" -c "$f" -o "$WORK/obj/lib_$(basename "$f" .c).o"
done
for f in ops ops_exec ops_trace; do
    # shellcheck disable=SC2086
    $CC $CFLAGS $STD -I"$SRC/lib/include" -I"$SRC/lib/src" -I"$SRC/fuzz" -c "$SRC/fuzz/$f.c" -o "$WORK/obj/$f.o"
done
ar rcs "$WORK/libamm_fuzz.a" "$WORK"/obj/*.o

for t in $TARGETS; do
    # shellcheck disable=SC2086
    $CC $CFLAGS $STD -I"$SRC/lib/include" -I"$SRC/fuzz" -c "$SRC/fuzz/$t.c" -o "$WORK/$t.o"
    # The engine may be C++ (libFuzzer, AFL++'s driver): link with the C++ driver when there is one.
    LD=${CXX:-$CC}
    # shellcheck disable=SC2086
    $LD $CFLAGS "$WORK/$t.o" "$WORK/libamm_fuzz.a" $LIB_FUZZING_ENGINE -lpthread -o "$OUT/$t"
    cp "$SRC/fuzz/$t.dict" "$SRC/fuzz/$t.options" "$OUT/"
    rm -f "$OUT/${t}_seed_corpus.zip"
    for d in "$SRC/fuzz/corpus/$t" "$SRC/fuzz/regressions/$t"; do
        if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then (cd "$d" && zip -q -r "$OUT/${t}_seed_corpus.zip" .); fi
    done
    echo "built $OUT/$t"
done
