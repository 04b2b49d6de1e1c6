# tests/snapshot_tests.cmake: snapshot, compaction and crash-point suites (included at the end of
# tests/CMakeLists.txt).
#
# Both suites call internals (the fault-injection table of src/fs.h, the snapshot header of
# src/snapshot.h), so they link the static library, with src/ on their include path, plus
# faultfs: the counting, failing and crashing fs table they share.

# Criterion cannot start under ThreadSanitizer (see tests/CMakeLists.txt); stress/ covers TSan.
if(PKV_SANITIZE STREQUAL "thread")
  return()
endif()

add_library(pkv_faultfs STATIC ${CMAKE_CURRENT_SOURCE_DIR}/faultfs.c)
target_compile_options(pkv_faultfs PRIVATE ${PKV_WARNINGS})
target_include_directories(pkv_faultfs PUBLIC ${PROJECT_SOURCE_DIR}/include
                           ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pkv_faultfs PUBLIC pkv_static Threads::Threads)

foreach(m snapshot crashpoints)
  add_executable(test_${m} ${CMAKE_CURRENT_SOURCE_DIR}/test_${m}.c)
  target_compile_options(test_${m} PRIVATE ${PKV_WARNINGS})
  target_include_directories(test_${m} PRIVATE ${PROJECT_SOURCE_DIR}/include
                             ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(test_${m} PRIVATE pkv_faultfs pkv_testutil pkv_static
                        PkgConfig::CRITERION)
  # --jobs 1: Criterion 2.4.1's runner leaks 48 bytes now and then when it runs tests in
  # parallel, and the LSan suppression for that (tests/lsan.supp) needs the slow unwinder, which
  # makes these workloads several times slower under ASan. The suites wait mostly on real syncs,
  # and test_crashpoints runs its trials in parallel itself. The TIMEOUT is the last line of
  # defence behind each test's own Criterion .timeout; both suites run well under it.
  add_test(NAME test_${m} COMMAND test_${m} --jobs 1)
  if(DEFINED PKV_TEST_TMPDIR)
    # Temp dirs in the build tree, like the other suites (tests/CMakeLists.txt).
    set_tests_properties(test_${m} PROPERTIES ENVIRONMENT "TMPDIR=${PKV_TEST_TMPDIR}")
  endif()
endforeach()
set_tests_properties(test_snapshot PROPERTIES TIMEOUT 300 LABELS "snapshot;compaction")
set_tests_properties(test_crashpoints PROPERTIES TIMEOUT 300 LABELS "crashpoint;recovery")
