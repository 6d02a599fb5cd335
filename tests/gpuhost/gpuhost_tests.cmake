# tokenplace-gpuhost tests, included from tests/CMakeLists.txt.
#   unit      CMocka tests of the pure parts and tp_netcheck
#   gpuhost   the real embedding: Debian's libpython3.11, a venv, server.py
#   windows   mingw-w64 cross-build and wine smoke tests (not in ASan builds:
#             the Windows binary does not depend on the sanitizer switch)
find_library(TP_NSS_WRAPPER NAMES nss_wrapper)
set(GPUHOST_NSS_ENV)
if(TP_NSS_WRAPPER)
  set(GPUHOST_NSS_ENV
    "LD_PRELOAD=${TP_NSS_WRAPPER}"
    "NSS_WRAPPER_HOSTS=${CMAKE_CURRENT_SOURCE_DIR}/gpuhost/hosts.test"
    "NSS_WRAPPER_PASSWD=/etc/passwd" "NSS_WRAPPER_GROUP=/etc/group"
    # Its fallback to libc uses RTLD_DEEPBIND, which ASan refuses.
    "NSS_WRAPPER_DISABLE_DEEPBIND=1"
    # The preload comes before the ASan runtime in the library list.
    "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1")
endif()

tp_unit_test(test_gpuhost_config LIBS gpuhost_core)
tp_unit_test(test_gpuhost_args LIBS gpuhost_core)
tp_unit_test(test_gpuhost_fwrules LIBS gpuhost_core)
tp_unit_test(test_gpuhost_runtime LIBS gpuhost_core)
tp_unit_test(test_gpuhost_checks LIBS gpuhost_core)
tp_unit_test(test_gpuhost_netcheck LIBS tokenplace_core)
set_tests_properties(test_gpuhost_netcheck PROPERTIES
  ENVIRONMENT "${GPUHOST_NSS_ENV}")

# A stand-in NVML (the few functions gpuhost binds) for the gpu check,
# `status` and the metrics endpoint; FAKE_NVML picks its answers.
add_library(gpuhost_fakenvml MODULE gpuhost/nvml/fakenvml.c)
set_target_properties(gpuhost_fakenvml PROPERTIES OUTPUT_NAME fakenvml
  C_VISIBILITY_PRESET hidden)
tp_set_warnings(gpuhost_fakenvml)
add_test(NAME gpuhost_gpu
  COMMAND ${TP_PYTHON} -B ${CMAKE_CURRENT_SOURCE_DIR}/gpuhost/test_gpuhost_gpu.py)
set_tests_properties(gpuhost_gpu PROPERTIES LABELS gpuhost TIMEOUT 900
  ENVIRONMENT "GPUHOST_BIN=$<TARGET_FILE:tokenplace-gpuhost>;GPUHOST_FAKE_NVML=$<TARGET_FILE:gpuhost_fakenvml>")

add_test(NAME gpuhost_linux
  COMMAND ${TP_PYTHON} -B ${CMAKE_CURRENT_SOURCE_DIR}/gpuhost/test_gpuhost_linux.py)
set_tests_properties(gpuhost_linux PROPERTIES LABELS gpuhost TIMEOUT 900
  ENVIRONMENT "GPUHOST_BIN=$<TARGET_FILE:tokenplace-gpuhost>;TP_NSS_WRAPPER=${TP_NSS_WRAPPER};GPUHOST_BUILD_DIR=${CMAKE_BINARY_DIR}")

# windows/llamacpp_state.py: what install.ps1 decides pip may touch.
add_test(NAME gpuhost_llamacpp_state
  COMMAND ${TP_PYTHON} -B ${CMAKE_CURRENT_SOURCE_DIR}/gpuhost/test_llamacpp_state.py)
set_tests_properties(gpuhost_llamacpp_state PROPERTIES LABELS gpuhost TIMEOUT 300)

# token.place's command line against a real relay from the same build.
if(TARGET tokenplace-relay)
  add_test(NAME gpuhost_relay
    COMMAND ${TP_PYTHON} -B ${CMAKE_CURRENT_SOURCE_DIR}/gpuhost/test_gpuhost_relay.py)
  set_tests_properties(gpuhost_relay PROPERTIES LABELS gpuhost TIMEOUT 900
    ENVIRONMENT "GPUHOST_BIN=$<TARGET_FILE:tokenplace-gpuhost>;TP_RELAY_BIN=$<TARGET_FILE:tokenplace-relay>;PYTHONPATH=${CMAKE_CURRENT_SOURCE_DIR}/integration")
endif()

# ---- Windows: mingw-w64 cross-build + wine smoke tests ---------------------
if(NOT TP_SANITIZE AND NOT TP_TSAN)
  set(GPUHOST_MINGW_DIR ${CMAKE_BINARY_DIR}/gpuhost-mingw)
  add_test(NAME gpuhost_mingw_build
    COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DBUILD_DIR=${GPUHOST_MINGW_DIR}
      -P ${CMAKE_CURRENT_SOURCE_DIR}/gpuhost/mingw_build.cmake)
  set_tests_properties(gpuhost_mingw_build PROPERTIES LABELS windows
    TIMEOUT 900 FIXTURES_SETUP gpuhost_mingw)
  add_test(NAME gpuhost_wine
    COMMAND ${TP_PYTHON} -B ${CMAKE_CURRENT_SOURCE_DIR}/gpuhost/test_gpuhost_wine.py)
  set_tests_properties(gpuhost_wine PROPERTIES LABELS windows TIMEOUT 900
    FIXTURES_REQUIRED gpuhost_mingw RUN_SERIAL TRUE
    ENVIRONMENT "GPUHOST_EXE=${GPUHOST_MINGW_DIR}/gpuhost/tokenplace-gpuhost.exe;WINEPREFIX=${CMAKE_BINARY_DIR}/wineprefix;TP_NSS_WRAPPER=${TP_NSS_WRAPPER}")
endif()
