#!/usr/bin/env bash
# expect_report.sh PRELOAD_LIB STATUS STDOUT REPORT -- command args...
#   Runs the command with LD_PRELOAD=PRELOAD_LIB (AMM_OPTIONS comes from the
#   environment).  Passes when
#     - it exits with STATUS (a number, or "abort": killed by SIGABRT);
#     - its stdout is exactly the line STDOUT ("-": not checked);
#     - its stderr is exactly one line equal to REPORT once every 0x...
#       address in it is replaced by 0xADDR, or, when REPORT starts with "~",
#       one line matching the extended regex after the "~"; "none": stderr empty.
set -u
if [ $# -lt 6 ] || [ "$5" != "--" ]; then
  echo "usage: $0 PRELOAD_LIB STATUS STDOUT REPORT -- command args..." >&2
  exit 2
fi
lib=$1 want_status=$2 want_out=$3 want_report=$4
shift 5
[ "$want_status" = abort ] && want_status=$((128 + 6))
[ -f "$lib" ] || { echo "FAIL: no preload library at $lib"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/amm-preload-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# A subshell, so that bash's own "Aborted" notice does not land in the captured stderr.
(LD_PRELOAD=$lib "$@" >"$tmp/out" 2>"$tmp/err")
status=$?
got=$(sed -E 's/0x[0-9a-f]+/0xADDR/g' "$tmp/err")
lines=$(wc -l <"$tmp/err")

ok=1
problems=()
if [ "$status" -ne "$want_status" ]; then
  ok=0 problems+=("exit status $status, wanted $want_status")
fi
if [ "$want_out" != "-" ] && [ "$(cat "$tmp/out")" != "$want_out" ]; then
  ok=0 problems+=("stdout is '$(cat "$tmp/out")', wanted '$want_out'")
fi
case $want_report in
  none)
    [ -s "$tmp/err" ] && ok=0 problems+=("stderr should be empty") ;;
  "~"*)
    if [ "$lines" -ne 1 ] || ! grep -Eq -- "${want_report#\~}" <<<"$got"; then
      ok=0 problems+=("stderr should be one line matching /${want_report#\~}/")
    fi ;;
  *)
    if [ "$lines" -ne 1 ] || [ "$got" != "$want_report" ]; then
      ok=0 problems+=("stderr should be the one line '$want_report'")
    fi ;;
esac
if [ "$ok" -ne 1 ]; then
  echo "FAIL: '$*' under amm:"
  printf '  - %s\n' "${problems[@]}"
  echo "stderr was:"
  cat "$tmp/err"
  exit 1
fi
echo "ok: '$*' exited $status; stderr: ${got:-(empty)}"
