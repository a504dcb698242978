#!/usr/bin/env bash
# check-install.sh - installs a build of amm into a temporary prefix and builds
# tests/install/consumer against it twice over: with CMake (find_package(amm),
# amm::amm and amm::amm_static) and with pkg-config (shared, and --static).
# Each program must print "amm consumer ok: amm VERSION".
# Where the build has libamm-preload.so, it must be installed and work from there.
#
# usage: check-install.sh BUILD_DIR CONSUMER_DIR VERSION LIBDIR CC ["EXTRA_FLAGS"]
#   LIBDIR       the build's CMAKE_INSTALL_LIBDIR (lib, lib/x86_64-linux-gnu, ...)
#   EXTRA_FLAGS  compile+link flags the consumers need too (the build's sanitizers)
set -euo pipefail

if [ $# -lt 5 ] || [ $# -gt 6 ]; then
  echo "usage: $0 BUILD_DIR CONSUMER_DIR VERSION LIBDIR CC [EXTRA_FLAGS]" >&2
  exit 2
fi
build=$1 consumer=$2 version=$3 libdir=$4 cc=$5 extra=${6:-}
want="amm consumer ok: amm $version"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/amm-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { echo "== $*"; }

# Runs "$@" quietly; on failure shows its log and counts it.
quiet() {
  local log=$tmp/log
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "command failed: $*"
    return 1
  fi
}

# Runs a consumer program and compares its one line of output.
run_consumer() {
  local prog=$1 got
  if ! got=$("$prog" 2>"$tmp/stderr"); then
    cat "$tmp/stderr" >&2
    fail "$(basename "$prog") exited with an error"
    return
  fi
  if [ "$got" != "$want" ]; then
    fail "$(basename "$prog") printed '$got', expected '$want'"
  else
    echo "ok: $(basename "$prog"): $got"
  fi
}

# needs_libamm PROG yes|no: does the program load libamm.so at run time?
check_needed() {
  local prog=$1 expect=$2 has=no
  if readelf -d "$prog" | grep -q 'NEEDED.*\[libamm\.so'; then has=yes; fi
  if [ "$has" != "$expect" ]; then
    fail "$(basename "$prog"): needs libamm.so is '$has', expected '$expect'"
  fi
}

step "cmake --install $build --prefix $prefix"
quiet cmake --install "$build" --prefix "$prefix" || exit 1

step "installed files"
for f in include/amm/amm.h include/amm/mem_manager.h include/amm/trace.h \
         "$libdir/libamm.a" "$libdir/libamm.so" "$libdir/libamm.so.${version%%.*}" \
         "$libdir/cmake/amm/amm-config.cmake" "$libdir/cmake/amm/amm-config-version.cmake" \
         "$libdir/cmake/amm/amm-targets.cmake" "$libdir/pkgconfig/amm.pc"; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
if [ -e "$prefix/include/internal.h" ] || [ -e "$prefix/include/amm/internal.h" ]; then
  fail "internal.h must not be installed"
fi

step "CMake consumer (find_package(amm))"
if quiet cmake -S "$consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
       -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" &&
   quiet cmake --build "$tmp/cmake-build"; then
  run_consumer "$tmp/cmake-build/consumer_amm"
  check_needed "$tmp/cmake-build/consumer_amm" yes
  run_consumer "$tmp/cmake-build/consumer_amm_static"
  check_needed "$tmp/cmake-build/consumer_amm_static" no
fi

step "pkg-config consumer"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
got=$(pkg-config --modversion amm) || got="(pkg-config failed)"
[ "$got" = "$version" ] || fail "pkg-config --modversion amm gave '$got', expected '$version'"
warn="-std=c11 -Wall -Wextra -Wpedantic -Werror"
# shellcheck disable=SC2086 # word splitting of the flag lists is intended
if quiet "$cc" $warn $extra "$consumer/main.c" -o "$tmp/pc_shared" \
       $(pkg-config --cflags --libs amm) -Wl,-rpath,"$(pkg-config --variable=libdir amm)"; then
  run_consumer "$tmp/pc_shared"
  check_needed "$tmp/pc_shared" yes
fi
static_libs=$(pkg-config --static --libs amm)
case " $static_libs " in
  *" -lpthread "*) ;;
  *) fail "pkg-config --static --libs amm lacks -lpthread: '$static_libs'" ;;
esac
# shellcheck disable=SC2086
if quiet "$cc" $warn $extra "$consumer/main.c" -o "$tmp/pc_static" \
       $(pkg-config --cflags amm) -Wl,-Bstatic $static_libs -Wl,-Bdynamic; then
  run_consumer "$tmp/pc_static"
  check_needed "$tmp/pc_static" no
fi

# The LD_PRELOAD shim, where this build has one (not in sanitizer or fuzz builds):
# installed, and working from its installed place.
if [ -e "$build/lib/libamm-preload.so" ]; then
  step "installed LD_PRELOAD shim"
  shim="$prefix/$libdir/libamm-preload.so"
  if [ ! -e "$shim" ]; then
    fail "not installed: $libdir/libamm-preload.so"
  elif ! LD_PRELOAD=$shim AMM_PRELOAD_STATS="$tmp/stats" ls "$prefix" >/dev/null ||
       ! grep -Eq ': [1-9][0-9]* allocations, [0-9]+ frees, 0 faults' "$tmp/stats"; then
    fail "ls under the installed $libdir/libamm-preload.so did not run cleanly through amm"
  else
    echo "ok: $(cat "$tmp/stats")"
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "install test: $failures failure(s)" >&2
  exit 1
fi
echo "install test: all consumers built and ran"
