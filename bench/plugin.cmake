# prism_bench_plugin: Get on prism-plugin-memstore over a Unix socket with
# tracing off / traceidratio 0.01 / always_on, side by side (docs/benchmarks.md).
# bench/ is configured before the components, so the targets used here are
# referenced by name and resolved at generate time.
if(EXISTS ${PROJECT_SOURCE_DIR}/plugins/memstore/CMakeLists.txt)
  add_executable(prism_bench_plugin ${CMAKE_CURRENT_LIST_DIR}/plugin_bench.cc)
  target_link_libraries(prism_bench_plugin PRIVATE prism_plugin_testing)
  target_compile_definitions(prism_bench_plugin PRIVATE
    PRISM_MEMSTORE_PLUGIN="$<TARGET_FILE:prism-plugin-memstore>")
  add_dependencies(prism_bench_plugin prism-plugin-memstore)
endif()
