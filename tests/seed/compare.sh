#!/bin/sh
# compare.sh PROGRAM EXPECTED - runs PROGRAM and compares its stdout with the
# file EXPECTED after normalising what changes from run to run:
#   0x<hex>            -> 0xADDR     (addresses)
#   <n> resident       -> N resident (resident bytes, from mincore)
#   /some/dir/file.c   -> file.c     (source paths in allocation sites)
# Prints a unified diff and fails on any difference or a non-zero exit status.
# To regenerate EXPECTED after an intended change: PROGRAM > EXPECTED, then
# read it line by line before committing it.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 PROGRAM EXPECTED" >&2
    exit 2
fi
prog=$1
expected=$2
if [ ! -r "$expected" ]; then
    echo "compare.sh: cannot read expected output '$expected'" >&2
    exit 2
fi
tmp=${TMPDIR:-/tmp}/amm-seed.$$
trap 'rm -f "$tmp.out" "$tmp.got" "$tmp.want"' EXIT INT TERM

normalise() {
    sed -e 's/0x[0-9a-fA-F][0-9a-fA-F]*/0xADDR/g' \
        -e 's/[0-9][0-9]* resident/N resident/g' \
        -e 's#[^ :]*/\([^/ :]*\.c\)#\1#g' "$1"
}

"$prog" > "$tmp.out"
rc=$?
normalise "$tmp.out" > "$tmp.got"
normalise "$expected" > "$tmp.want"
if [ $rc -ne 0 ]; then
    echo "compare.sh: $prog exited with status $rc; its output:" >&2
    cat "$tmp.out"
    exit 1
fi
if ! diff -u "$tmp.want" "$tmp.got"; then
    echo "compare.sh: the output of $prog differs from $expected (diff above: - expected, + got)" >&2
    exit 1
fi
echo "output matches $expected"
