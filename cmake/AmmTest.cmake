# AmmTest.cmake - how amm's tests are declared.
#
# amm_add_test(NAME name SOURCES a.c b.c [LIBS x y] [ARGS ...] [LABELS ...]
#              [ENV NAME=VALUE ...] [TIMEOUT seconds] [WORKING_DIRECTORY dir])
#   Builds the executable `name` from SOURCES, linked to amm::amm (static),
#   amm_warnings and LIBS, with tests/ (for harness.h) and lib/src (for
#   internal.h) on its include path, and registers it with CTest as `name`
#   running `name ARGS...`.  In sanitizer builds AMM_TEST_ENV is added to ENV.
#   TIMEOUT (default 60 s) only stops a hung test; tests are never timed.
#
# amm_add_command_test(NAME name COMMAND cmd args... [LABELS ...] [ENV ...]
#                      [TIMEOUT s] [WORKING_DIRECTORY dir] [PASS_REGULAR_EXPRESSION re]
#                      [SKIP_RETURN_CODE n])
#   Registers an existing command (a script, a target name) as a test with the
#   same environment and defaults.
#
# amm_add_output_test(NAME name COMMAND cmd args... EXPECTED file [STDIN file]
#                     [LABELS ...] [ENV ...] [TIMEOUT s] [WORKING_DIRECTORY dir])
#   Runs the command and compares its stdout with EXPECTED line by line after
#   replacing every 0x... hexadecimal address with 0xADDR (addresses change from
#   run to run).  Fails, printing a unified diff, on any difference or a non-zero
#   exit status.
#
# amm_test_env(test...)
#   Applies AMM_TEST_ENV (sanitizer runtime options) to tests made with a plain
#   add_test().
include_guard(GLOBAL)

set(AMM_TEST_DEFAULT_TIMEOUT 60 CACHE STRING "Seconds after which CTest kills a hung amm test")

function(amm_test_env)
  if(AMM_TEST_ENV)
    set_property(TEST ${ARGN} APPEND PROPERTY ENVIRONMENT ${AMM_TEST_ENV})
  endif()
endfunction()

# Shared by the three functions below: labels, environment, timeout, directory.
function(_amm_test_properties name)
  cmake_parse_arguments(P "" "TIMEOUT;WORKING_DIRECTORY;PASS_REGULAR_EXPRESSION;SKIP_RETURN_CODE"
                        "LABELS;ENV" ${ARGN})
  if(NOT P_TIMEOUT)
    set(P_TIMEOUT ${AMM_TEST_DEFAULT_TIMEOUT})
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${P_TIMEOUT})
  if(P_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${P_LABELS}")
  endif()
  set(env ${AMM_TEST_ENV} ${P_ENV})
  if(env)
    set_property(TEST ${name} PROPERTY ENVIRONMENT ${env})
  endif()
  if(P_PASS_REGULAR_EXPRESSION)
    set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION "${P_PASS_REGULAR_EXPRESSION}")
  endif()
  if(NOT "${P_SKIP_RETURN_CODE}" STREQUAL "")
    set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE ${P_SKIP_RETURN_CODE})
  endif()
endfunction()

# After cmake_parse_arguments(T ...): stops on a missing required keyword or an
# unknown argument, and defaults T_WORKING_DIRECTORY to the current build dir.
macro(_amm_test_check fn)
  foreach(_amm_req IN ITEMS NAME ${ARGN})
    if(NOT T_${_amm_req})
      message(FATAL_ERROR "${fn}(${T_NAME}): ${_amm_req} is required")
    endif()
  endforeach()
  if(T_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${fn}(${T_NAME}): unknown arguments '${T_UNPARSED_ARGUMENTS}'")
  endif()
  if(NOT T_WORKING_DIRECTORY)
    set(T_WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
endmacro()

function(amm_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;WORKING_DIRECTORY" "SOURCES;LIBS;ARGS;LABELS;ENV" ${ARGN})
  _amm_test_check(amm_add_test SOURCES)
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE amm::amm amm_warnings ${T_LIBS})
  target_include_directories(${T_NAME} PRIVATE "${PROJECT_SOURCE_DIR}/tests" "${PROJECT_SOURCE_DIR}/lib/src")
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS} WORKING_DIRECTORY "${T_WORKING_DIRECTORY}")
  _amm_test_properties(${T_NAME} TIMEOUT "${T_TIMEOUT}" LABELS ${T_LABELS} ENV ${T_ENV})
endfunction()

function(amm_add_command_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;WORKING_DIRECTORY;PASS_REGULAR_EXPRESSION;SKIP_RETURN_CODE"
                        "COMMAND;LABELS;ENV" ${ARGN})
  _amm_test_check(amm_add_command_test COMMAND)
  add_test(NAME ${T_NAME} COMMAND ${T_COMMAND} WORKING_DIRECTORY "${T_WORKING_DIRECTORY}")
  _amm_test_properties(${T_NAME} TIMEOUT "${T_TIMEOUT}" LABELS ${T_LABELS} ENV ${T_ENV}
                       PASS_REGULAR_EXPRESSION "${T_PASS_REGULAR_EXPRESSION}"
                       SKIP_RETURN_CODE "${T_SKIP_RETURN_CODE}")
endfunction()

function(amm_add_output_test)
  cmake_parse_arguments(T "" "NAME;EXPECTED;STDIN;TIMEOUT;WORKING_DIRECTORY" "COMMAND;LABELS;ENV" ${ARGN})
  _amm_test_check(amm_add_output_test COMMAND EXPECTED)
  get_filename_component(expected "${T_EXPECTED}" ABSOLUTE)
  # The command is handed to the script as one ;-list; a target name becomes its file.
  list(GET T_COMMAND 0 cmd0)
  if(TARGET ${cmd0})
    list(REMOVE_AT T_COMMAND 0)
    list(PREPEND T_COMMAND "$<TARGET_FILE:${cmd0}>")
  endif()
  string(REPLACE ";" "\\;" cmd_arg "${T_COMMAND}")
  set(stdin_arg "")
  if(T_STDIN)
    get_filename_component(stdin_file "${T_STDIN}" ABSOLUTE)
    set(stdin_arg "-DSTDIN=${stdin_file}")
  endif()
  add_test(NAME ${T_NAME}
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${cmd_arg}" "-DEXPECTED=${expected}"
                   "-DACTUAL=${CMAKE_CURRENT_BINARY_DIR}/${T_NAME}.out" ${stdin_arg}
                   -P "${PROJECT_SOURCE_DIR}/cmake/AmmCompareOutput.cmake"
           WORKING_DIRECTORY "${T_WORKING_DIRECTORY}")
  _amm_test_properties(${T_NAME} TIMEOUT "${T_TIMEOUT}" LABELS ${T_LABELS} ENV ${T_ENV})
endfunction()
