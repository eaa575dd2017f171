# Renders a sample registry (test_base_metrics --exposition) and checks it
# with `promtool check metrics`, which lints names, types, help and units.
execute_process(COMMAND ${EXPOSITION} --exposition OUTPUT_VARIABLE text
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "rendering the exposition failed: ${rc}")
endif()
if(NOT text MATCHES "# TYPE")
  message(FATAL_ERROR "exposition is empty:\n${text}")
endif()
file(WRITE ${OUT} "${text}")
execute_process(COMMAND ${PROMTOOL} check metrics INPUT_FILE ${OUT}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE prc)
if(NOT prc EQUAL 0 OR NOT "${out}${err}" STREQUAL "")
  message(FATAL_ERROR "promtool check metrics failed (${prc}):\n${out}${err}\n--- exposition ---\n${text}")
endif()
message(STATUS "promtool check metrics: clean")
