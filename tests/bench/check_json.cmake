# check_json.cmake - runs `amm-bench --quick --json` on a small subset and
# checks the document with CMake's own JSON parser: it must parse, name the
# machine and the peers' versions, and hold one table per workload asked for,
# each row as wide as its column list.
#   cmake -DBENCH=/path/to/amm-bench -P check_json.cmake
if(NOT BENCH)
  message(FATAL_ERROR "check_json.cmake: pass -DBENCH=<amm-bench>")
endif()
execute_process(COMMAND "${BENCH}" --quick --json --repeats 1 --only pool,frag
                OUTPUT_VARIABLE doc RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "amm-bench --json exited with ${rc}")
endif()

string(JSON machine ERROR_VARIABLE err GET "${doc}" machine machine)
if(err)
  message(FATAL_ERROR "no machine.machine in the JSON document: ${err}\n${doc}")
endif()
foreach(key IN ITEMS glibc mimalloc jemalloc amm seed)
  string(JSON value ERROR_VARIABLE err GET "${doc}" machine ${key})
  if(err OR value STREQUAL "")
    message(FATAL_ERROR "machine.${key} is missing or empty: ${err}")
  endif()
endforeach()

# pool + frag, plus the targets table.
string(JSON ntables ERROR_VARIABLE err LENGTH "${doc}" tables)
if(err OR ntables LESS 2)
  message(FATAL_ERROR "expected at least 2 tables, got '${ntables}' ${err}")
endif()
math(EXPR last "${ntables} - 1")
foreach(t RANGE ${last})
  string(JSON title GET "${doc}" tables ${t} title)
  string(JSON ncols LENGTH "${doc}" tables ${t} columns)
  string(JSON nrows LENGTH "${doc}" tables ${t} rows)
  if(nrows EQUAL 0)
    message(FATAL_ERROR "table '${title}' has no rows")
  endif()
  math(EXPR last_row "${nrows} - 1")
  foreach(r RANGE ${last_row})
    string(JSON width LENGTH "${doc}" tables ${t} rows ${r})
    if(NOT width EQUAL ncols)
      message(FATAL_ERROR "table '${title}' row ${r} has ${width} cells for ${ncols} columns")
    endif()
  endforeach()
endforeach()
message(STATUS "amm-bench --json: ${ntables} well-formed tables on ${machine}")
