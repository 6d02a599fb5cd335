# Project-wide warning set; applied per target with tp_set_warnings(target).
set(TP_WARNING_FLAGS
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wconversion -Wsign-conversion -Wpointer-arith -Wcast-qual -Wformat=2
  -Wundef -Wvla -Wnull-dereference -Wdouble-promotion)

function(tp_set_warnings target)
  target_compile_options(${target} PRIVATE ${TP_WARNING_FLAGS})
  if(TP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Tests and fixtures: same warnings, minus the conversion noise that CMocka's
# macros trigger.
function(tp_set_test_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow
    -Wstrict-prototypes -Wno-missing-prototypes)
  if(TP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
