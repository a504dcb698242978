# listen_lib.sh - shared by the viz shell tests (sourced): start amm-viz on a
# socket in the background and wait, bounded, until it listens.
#   viz_listen NAME LOG amm-viz-args...   sets viz_pid and sock; exits on failure
viz_listen() {
    name=$1 log=$2
    shift 2
    sock=$(mktemp -u "/tmp/amm-viz-$name-XXXXXX.sock")
    "$viz" --listen "$sock" "$@" >"$log" 2>&1 &
    viz_pid=$!
    trap 'kill "$viz_pid" 2>/dev/null || true; rm -f "$sock"' EXIT INT TERM
    i=0
    while [ ! -S "$sock" ]; do
        i=$((i + 1))
        if [ $i -gt 500 ] || ! kill -0 "$viz_pid" 2>/dev/null; then
            echo "$name: amm-viz did not start listening"
            cat "$log"
            exit 1
        fi
        sleep 0.02
    done
}
