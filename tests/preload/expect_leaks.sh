#!/usr/bin/env bash
# expect_leaks.sh PRELOAD_LIB VICTIM
#   Runs "VICTIM leak" under the shim (AMM_OPTIONS, with leaks=on, comes from
#   the environment).  Passes when it exits 0 and stderr holds the leak report:
#   the victim's three 77-byte blocks on one line naming victim_block, and a
#   summary line counting at least those 231 bytes in 3 blocks.
set -u
lib=$1 victim=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/amm-preload-leaks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
LD_PRELOAD=$lib "$victim" leak >"$tmp/out" 2>"$tmp/err"
status=$?
fail() {
  echo "FAIL: $1"
  echo "stderr was:"
  cat "$tmp/err"
  exit 1
}
[ "$status" -eq 0 ] || fail "exit status $status"
[ "$(cat "$tmp/out")" = "victim: leak done" ] || fail "stdout is '$(cat "$tmp/out")'"
grep -Eq '^amm: leak: 231 bytes in 3 blocks allocated at preload_victim!victim_block\+0x[0-9a-f]+$' "$tmp/err" ||
  fail "no line for the victim's three blocks"
summary=$(grep -E '^amm: leak summary: [0-9]+ bytes in [0-9]+ blocks still live, from [0-9]+ sites$' "$tmp/err") ||
  fail "no summary line"
read -r bytes blocks < <(sed -E 's/^amm: leak summary: ([0-9]+) bytes in ([0-9]+) blocks.*/\1 \2/' <<<"$summary")
[ "$bytes" -ge 231 ] && [ "$blocks" -ge 3 ] || fail "the summary counts $bytes bytes in $blocks blocks"
grep -v '^amm: leak' "$tmp/err" | grep -q . && fail "stderr holds more than the leak report"
echo "ok: the leak report names the victim's blocks ($summary)"
