# AmmCompareOutput.cmake - run by amm_add_output_test (cmake -P).
#   -DCOMMAND=<;-list> -DEXPECTED=<file> -DACTUAL=<file> [-DSTDIN=<file>]
# Runs COMMAND, writes its stdout (addresses replaced by 0xADDR) to ACTUAL and
# compares it with EXPECTED (normalised the same way).  The test fails on a
# non-zero exit status or any difference, and prints a diff.
foreach(var COMMAND EXPECTED ACTUAL)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "AmmCompareOutput: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${EXPECTED}")
  message(FATAL_ERROR "AmmCompareOutput: expected output file ${EXPECTED} does not exist")
endif()

set(input_args "")
if(DEFINED STDIN)
  set(input_args INPUT_FILE "${STDIN}")
endif()
execute_process(COMMAND ${COMMAND} ${input_args}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)

function(_amm_normalise text outvar)
  string(REGEX REPLACE "0x[0-9a-fA-F]+" "0xADDR" text "${text}")
  string(REPLACE "\r\n" "\n" text "${text}")
  set(${outvar} "${text}" PARENT_SCOPE)
endfunction()

_amm_normalise("${out}" actual)
file(READ "${EXPECTED}" expected_raw)
_amm_normalise("${expected_raw}" expected)
file(WRITE "${ACTUAL}" "${actual}")

if(NOT rc STREQUAL "0")
  message("---- stderr ----\n${err}")
  message(FATAL_ERROR "${COMMAND} exited with status '${rc}' (stdout kept in ${ACTUAL})")
endif()
if(NOT actual STREQUAL expected)
  set(expected_norm "${ACTUAL}.expected")
  file(WRITE "${expected_norm}" "${expected}")
  find_program(DIFF diff)
  if(DIFF)
    execute_process(COMMAND ${DIFF} -u "${expected_norm}" "${ACTUAL}" OUTPUT_VARIABLE d)
    message("---- diff -u expected actual ----\n${d}")
  else()
    message("---- expected ----\n${expected}\n---- actual ----\n${actual}")
  endif()
  message("---- stderr ----\n${err}")
  message(FATAL_ERROR "output of ${COMMAND} differs from ${EXPECTED}")
endif()
message("output matches ${EXPECTED}")
