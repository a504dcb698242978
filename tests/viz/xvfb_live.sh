#!/bin/sh
# xvfb_live.sh AMM_VIZ AMM_DEMO OUTDIR - a real amm-viz window under Xvfb,
# fed live over its Unix socket by two amm-demo runs one after the other
# (the viewer must accept the second connection), closed by its script
# through SDL_QUIT.  Checks: both writers' streams arrived, the screenshot
# taken in the window is a PNG of the window size, the viewer exited 0.
#
# CTest runs this under `xvfb-run -a`; run by hand, it starts xvfb-run itself.
set -eu
viz=$1 demo=$2 out=$3
if [ -z "${DISPLAY:-}" ]; then
    command -v xvfb-run >/dev/null 2>&1 || { echo "xvfb_live: xvfb-run is missing (make deps installs xvfb)"; exit 1; }
    exec xvfb-run -a -s "-screen 0 1280x800x24" sh "$0" "$@"
fi
mkdir -p "$out"
shot="$out/xvfb_live.png"
rm -f "$shot" "$out/viz.log"
. "$(dirname "$0")/listen_lib.sh"
# after both streams: colour mode key, then a click in the middle of the scrubber (at 1024x700
# it spans x 234..694 at y 679..689) seeks back to about half of the records
viz_listen xvfb_live "$out/viz.log" --size 1024x700 \
    --script "wait-streams 2;key c;click 464 684;frames 2;screenshot $shot;quit"

for run in 1 2; do
    AMM_OPTIONS="trace=unix:$sock" "$demo" --seed "$run" >"$out/demo$run.log" 2>&1 || {
        echo "xvfb_live: amm-demo run $run failed"; cat "$out/demo$run.log"; exit 1; }
done

# the viewer quits by itself once its script ran; wait for it (bounded by CTest's timeout)
status=0
wait "$viz_pid" || status=$?
trap - EXIT INT TERM
cat "$out/viz.log"
if [ "$status" -ne 0 ]; then echo "xvfb_live: amm-viz exited with $status"; exit 1; fi
if [ -e "$sock" ]; then echo "xvfb_live: the socket file was left behind"; rm -f "$sock"; exit 1; fi
[ -s "$shot" ] || { echo "xvfb_live: no screenshot written"; exit 1; }
sig=$(od -An -tx1 -N8 "$shot" | tr -d ' \n')
[ "$sig" = "89504e470d0a1a0a" ] || { echo "xvfb_live: $shot is not a PNG ($sig)"; exit 1; }
grep -q "wrote $shot (1024x700)" "$out/viz.log" || { echo "xvfb_live: screenshot size is not the window's"; exit 1; }
grep -q "closed: 2 streams" "$out/viz.log" || { echo "xvfb_live: the viewer did not see two streams"; exit 1; }
shown=$(sed -n 's/.*closed: 2 streams, \([0-9]*\) of \([0-9]*\) records.*/\1 \2/p' "$out/viz.log")
set -- $shown
[ $# -eq 2 ] && [ "$1" -gt $(($2 / 3)) ] && [ "$1" -lt $(($2 * 2 / 3)) ] ||
    { echo "xvfb_live: the scrubber click did not seek to the middle ($shown)"; exit 1; }
echo "xvfb_live: ok (two live streams shown, window closed by script)"
