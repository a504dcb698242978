#!/usr/bin/env bash
# expect.sh WANT_STATUS REGEX -- command...
#   Runs the command; passes if its exit status is WANT_STATUS ("nonzero" for
#   any failure) and its combined output, newlines read as spaces, matches the
#   extended REGEX.  Prints the output on failure.
set -u
want=$1 regex=$2
shift 3
out=$("$@" 2>&1)
status=$?
ok=1
if [ "$want" = nonzero ]; then [ "$status" -ne 0 ] || ok=0; else [ "$status" -eq "$want" ] || ok=0; fi
printf '%s' "$out" | tr '\n' ' ' | grep -Eq -- "$regex" || ok=0
if [ "$ok" -ne 1 ]; then
  echo "FAIL: '$*' exited $status (wanted $want), output must match /$regex/:"
  printf '%s\n' "$out" | head -60
  exit 1
fi
echo "ok: '$*' exited $status and printed /$regex/"
