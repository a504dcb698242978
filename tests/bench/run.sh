#!/usr/bin/env bash
# tests/bench/run.sh BUILD_DIR [amm-bench options...]
#
# What `make bench` runs: the full amm-bench (every workload, median of 5,
# amm checked/fast vs glibc, mimalloc, jemalloc), printing the tables and
# keeping a copy in BUILD_DIR/bench-results.txt (and BUILD_DIR/bench-results.json
# when --json is given).  Builds amm-bench first if BUILD_DIR lacks it.
# Extra options go to amm-bench, e.g. --only mixed,frag --seed 7 --repeats 9.
# Close other heavy work first: timings are CPU time of the measuring thread
# (wall time for the two-thread workload), still sensitive to a busy machine.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 BUILD_DIR [amm-bench options...]   (BUILD_DIR: a configured CMake build, e.g. build/release)" >&2
  exit 2
fi
build=$1
shift

bench="$build/tests/bench/amm-bench"
if [ ! -x "$bench" ]; then
  echo "run.sh: building amm-bench in $build" >&2
  cmake --build "$build" --target amm-bench -j "${JOBS:-2}"
fi

out="$build/bench-results.txt"
for arg in "$@"; do
  [ "$arg" = "--json" ] && out="$build/bench-results.json"
done
set +e
"$bench" "$@" | tee "$out"
status=${PIPESTATUS[0]}
set -e
echo "run.sh: results kept in $out" >&2
exit "$status"
