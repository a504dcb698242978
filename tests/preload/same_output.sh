#!/usr/bin/env bash
# same_output.sh PRELOAD_LIB -- command args...
#   Runs an unmodified program twice: plainly, then with LD_PRELOAD=PRELOAD_LIB.
#   Passes when both runs exit 0 with the same stdout and the same stderr (so
#   amm reported nothing), and amm really served the second run: at least one
#   process of it wrote its AMM_PRELOAD_STATS line with a non-zero allocation
#   count, and every process that did counted 0 faults.  Exits 77 (CTest: skipped)
#   when the command is not installed.
set -u
if [ $# -lt 3 ] || [ "$2" != "--" ]; then
  echo "usage: $0 PRELOAD_LIB -- command args..." >&2
  exit 2
fi
lib=$1
shift 2
if ! command -v "$1" >/dev/null 2>&1; then
  echo "skipped: $1 is not installed"
  exit 77
fi
[ -f "$lib" ] || { echo "FAIL: no preload library at $lib"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/amm-preload-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: '$*': $why"
  exit 1
}

"$@" >"$tmp/out.plain" 2>"$tmp/err.plain"
rc_plain=$?
LD_PRELOAD=$lib AMM_PRELOAD_STATS=$tmp/stats "$@" >"$tmp/out.amm" 2>"$tmp/err.amm"
rc_amm=$?

if [ "$rc_plain" -ne 0 ] || [ "$rc_amm" -ne 0 ]; then
  why="exit status $rc_plain plainly, $rc_amm under amm (both must be 0)"
  cat "$tmp/err.plain" "$tmp/err.amm" | head -40
  fail "$@"
fi
for stream in out err; do
  if ! cmp -s "$tmp/$stream.plain" "$tmp/$stream.amm"; then
    why="std$stream differs under amm (- plain, + amm):"
    diff -u "$tmp/$stream.plain" "$tmp/$stream.amm" | head -40
    fail "$@"
  fi
done
if ! grep -Eq ': [1-9][0-9]* allocations' "$tmp/stats" 2>/dev/null; then
  why="no process reported allocations served by amm (was the shim loaded?)"
  cat "$tmp/stats" 2>/dev/null
  fail "$@"
fi
if grep -Ev ' 0 faults' "$tmp/stats"; then
  why="a process counted faults"
  fail "$@"
fi
echo "ok: '$*': same output and status under amm; $(wc -l <"$tmp/stats") process(es) served:"
cat "$tmp/stats"
