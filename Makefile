# amm - a thin wrapper over CMake presets (CMakePresets.json).
#
#   make test     install missing Debian packages, then build and run the whole
#                 CTest suite: release (gcc) and asan-ubsan (clang), then the
#                 thread tests under tsan and a bounded fuzz run when present
#   make run      build release and run the viewer demo (or the seed demo)
#   make build    configure and build the release preset only
#   make bench    build release and run tests/bench/run.sh
#   make fuzz     run fuzz/ci-fuzz.sh for FUZZ_SECONDS per target (default 60)
#   make install  install the release build into PREFIX (default /usr/local)
#   make deps     install missing packages (root), or say what is missing
#   make clean    remove the preset build directories build/<preset> and build/run
#
# Variables: JOBS (parallel build jobs, default 2), PREFIX, FUZZ_SECONDS,
# CI_FUZZ_SECONDS (seconds per fuzz target inside `make test`, default 40).

SHELL := /bin/bash
.DEFAULT_GOAL := build
.SUFFIXES:

JOBS ?= 2
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 60
CI_FUZZ_SECONDS ?= 40
PRESETS := release debug asan-ubsan tsan fuzz

# Debian 12 packages the build, the tests, the viewer and the benchmarks use.
PACKAGES := build-essential cmake clang libclang-rt-14-dev llvm pkg-config \
            libsdl2-dev libsdl2-ttf-dev fonts-dejavu-core xvfb xauth \
            libmimalloc-dev libjemalloc-dev valgrind imagemagick

.PHONY: deps build test run bench fuzz install clean \
        $(addprefix stage-,$(PRESETS)) stage-tsan-threads stage-fuzz-ci

# dpkg-query says which packages are missing; apt-get runs only if some are,
# so a second run is quick and silent.
deps:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "deps: not a Debian system; make sure these (or their equivalents) are installed:"; \
	  echo "  $(PACKAGES)"; exit 0; \
	fi; \
	missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  echo "deps: missing packages:$$missing" >&2; \
	  echo "deps: install them as root: apt-get update && apt-get install -y$$missing" >&2; \
	  exit 1; \
	fi; \
	echo "deps: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing

# stage-<preset>: configure, build and run the whole suite of one preset.
$(addprefix stage-,$(PRESETS)): stage-%:
	@echo "==== $*: configure, build, test"
	cmake --preset $*
	cmake --build --preset $* -j $(JOBS)
	ctest --preset $*

# The tsan stage builds and runs only when tests labelled `threads` exist.
stage-tsan-threads:
	@echo "==== tsan: configure, build, thread tests"
	cmake --preset tsan
	@if ctest --preset tsan -N | grep -q 'Total Tests: 0'; then \
	  echo "tsan: no tests labelled 'threads' yet: skipped"; \
	else \
	  cmake --build --preset tsan -j $(JOBS) && ctest --preset tsan; \
	fi

stage-fuzz-ci:
	@echo "==== fuzz: fuzz/ci-fuzz.sh, $(CI_FUZZ_SECONDS) s per target"
	FUZZ_BUILD_JOBS=$(JOBS) bash fuzz/ci-fuzz.sh build/fuzz $(CI_FUZZ_SECONDS)

# Every stage runs even if an earlier one failed; the summary names each with
# its result and duration.
test: deps
	@stages="stage-release stage-asan-ubsan stage-tsan-threads"; \
	[ -f fuzz/ci-fuzz.sh ] && stages="$$stages stage-fuzz-ci"; \
	summary=""; failed=0; \
	for s in $$stages; do \
	  start=$$SECONDS; \
	  if $(MAKE) --no-print-directory $$s; then result=ok; else result=FAILED; failed=1; fi; \
	  summary="$$summary $${s#stage-}=$$result($$((SECONDS - start))s)"; \
	done; \
	if [ $$failed -eq 0 ]; then echo "make test: PASSED ($${summary# })"; \
	else echo "make test: FAILED ($${summary# })"; exit 1; fi

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

run: build
	@if [ -f viz/run-demo.sh ]; then \
	  bash viz/run-demo.sh build/release; \
	elif [ -x build/release/lib/mem_manager ]; then \
	  build/release/lib/mem_manager; \
	else \
	  echo "run: no demo built yet (lib/examples/mem_manager.c is missing)" >&2; exit 1; \
	fi

bench: build
	@if [ -f tests/bench/run.sh ]; then \
	  bash tests/bench/run.sh build/release; \
	else \
	  echo "bench: no benchmarks yet (tests/bench/run.sh is missing)"; \
	fi

fuzz: deps
	@[ -f fuzz/ci-fuzz.sh ] || { echo "fuzz: fuzz/ci-fuzz.sh is missing" >&2; exit 1; }
	FUZZ_BUILD_JOBS=$(JOBS) bash fuzz/ci-fuzz.sh build/fuzz $(FUZZ_SECONDS)

install: build
	cmake --install build/release --prefix "$(PREFIX)"

clean:
	rm -rf $(addprefix build/,$(PRESETS)) build/run
