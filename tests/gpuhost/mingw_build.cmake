# Cross-builds tokenplace-gpuhost.exe with mingw-w64 (warnings as errors)
# into BUILD_DIR; run by CTest as the setup fixture of the wine tests.
#   cmake -DSOURCE_DIR=... -DBUILD_DIR=... -P mingw_build.cmake
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BUILD_DIR}
    -DCMAKE_TOOLCHAIN_FILE=${SOURCE_DIR}/cmake/toolchains/mingw-w64.cmake
    -DCMAKE_BUILD_TYPE=Release -DTP_WERROR=ON -DTP_BUILD_TESTS=OFF
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mingw-w64 configure failed (${rc})")
endif()
execute_process(
  COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target tokenplace-gpuhost
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mingw-w64 build failed (${rc})")
endif()
