# AmmFlags.cmake - compiler flags shared by every amm target.
#
#   amm_warnings      INTERFACE target: -Wall -Wextra -Wpedantic -Werror.
#                     Link it (PRIVATE) to every target you create.
#   AMM_SANITIZE      e.g. "address,undefined" or "thread": applied to every
#                     compile and link in the tree (added before any target).
#   AMM_SANITIZED     TRUE when AMM_SANITIZE is set (tests may skip on it).
#   AMM_TEST_ENV      NAME=VALUE list of sanitizer runtime options; amm_add_test
#                     applies it, amm_test_env() applies it to other tests.
#   AMM_FUZZ          ON: everything gets -fsanitize=fuzzer-no-link (coverage)
#                     and the INTERFACE target amm_fuzz_engine links libFuzzer's
#                     main; OFF: amm_fuzz_engine is empty and fuzz targets bring
#                     their own standalone corpus-replay main.
include_guard(GLOBAL)
include(CheckCSourceCompiles)

add_library(amm_warnings INTERFACE)
target_compile_options(amm_warnings INTERFACE -Wall -Wextra -Wpedantic -Werror)

# Try a flag set on a tiny program (source), so a missing runtime (say
# libclang-rt) is a clear configure error rather than a puzzling link failure.
function(_amm_require_flags what source)
  list(JOIN ARGN " " flags)
  set(CMAKE_REQUIRED_FLAGS "${flags}")
  set(CMAKE_REQUIRED_LINK_OPTIONS ${ARGN})
  set(CMAKE_REQUIRED_QUIET ON)
  string(MAKE_C_IDENTIFIER "AMM_HAVE_${what}" var)
  check_c_source_compiles("${source}" ${var})
  if(NOT ${var})
    message(FATAL_ERROR
      "${CMAKE_C_COMPILER_ID} ${CMAKE_C_COMPILER} cannot build with ${what} (${flags}).\n"
      "Use clang (the asan-ubsan, tsan and fuzz presets do) and install its runtime: "
      "apt-get install clang libclang-rt-14-dev (or run `make deps`).")
  endif()
endfunction()

set(AMM_SANITIZED FALSE)
set(AMM_TEST_ENV "")
if(AMM_SANITIZE)
  string(REPLACE "," ";" _amm_san_list "${AMM_SANITIZE}")
  if("thread" IN_LIST _amm_san_list AND ("address" IN_LIST _amm_san_list OR "leak" IN_LIST _amm_san_list))
    message(FATAL_ERROR "AMM_SANITIZE='${AMM_SANITIZE}': thread cannot be combined with address or leak")
  endif()
  set(_amm_san_flags "-fsanitize=${AMM_SANITIZE}" -fno-omit-frame-pointer)
  if(NOT "thread" IN_LIST _amm_san_list)
    list(APPEND _amm_san_flags -fno-sanitize-recover=all)
  endif()
  _amm_require_flags("sanitize_${AMM_SANITIZE}" "int main(void) { return 0; }" ${_amm_san_flags})
  add_compile_options(${_amm_san_flags})
  add_link_options(${_amm_san_flags})
  set(AMM_SANITIZED TRUE)
  set(_amm_supp "${PROJECT_SOURCE_DIR}/cmake/lsan.supp")
  list(APPEND AMM_TEST_ENV
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:check_initialization_order=1"
    "LSAN_OPTIONS=suppressions=${_amm_supp}:print_suppressions=0"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")
endif()

add_library(amm_fuzz_engine INTERFACE)
if(AMM_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "AMM_FUZZ=ON needs clang (libFuzzer); configure with the fuzz preset "
                        "or -DCMAKE_C_COMPILER=clang, or leave AMM_FUZZ OFF for corpus-replay builds.")
  endif()
  _amm_require_flags("libfuzzer"
    "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; return (int)(n & 0); }"
    -fsanitize=fuzzer)
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
  target_compile_options(amm_fuzz_engine INTERFACE -fsanitize=fuzzer)
  target_link_options(amm_fuzz_engine INTERFACE -fsanitize=fuzzer)
  target_compile_definitions(amm_fuzz_engine INTERFACE AMM_FUZZ_LIBFUZZER=1)
endif()

# amm_check_warnings(): called once at the end of the top-level CMakeLists.
# Every target built from C sources must link amm_warnings (the project's rule:
# warning-clean on gcc and clang with -Werror); one that does not stops the
# configuration with its name and directory.  amm_static and amm_shared are
# made of amm_objects' objects, which link it.
function(_amm_collect_targets dir outvar)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _amm_collect_targets("${sub}" sub_targets)
    list(APPEND targets ${sub_targets})
  endforeach()
  set(${outvar} ${targets} PARENT_SCOPE)
endfunction()

function(amm_check_warnings)
  _amm_collect_targets("${PROJECT_SOURCE_DIR}" targets)
  set(missing "")
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(NOT type MATCHES "^(EXECUTABLE|STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY)$"
       OR t STREQUAL "amm_static" OR t STREQUAL "amm_shared")
      continue()
    endif()
    get_target_property(libs ${t} LINK_LIBRARIES)
    if(NOT libs MATCHES "(^|;|:)amm_warnings(>|;|$)")
      get_target_property(src ${t} SOURCE_DIR)
      file(RELATIVE_PATH src "${PROJECT_SOURCE_DIR}" "${src}")
      list(APPEND missing "${t} (${src}/)")
    endif()
  endforeach()
  if(missing)
    list(JOIN missing ", " missing)
    message(FATAL_ERROR "these targets do not link amm_warnings (-Wall -Wextra -Wpedantic -Werror): "
                        "${missing}. Add target_link_libraries(<target> PRIVATE amm_warnings).")
  endif()
endfunction()
