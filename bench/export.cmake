# Export benchmarks (tracing/exporters). Figures and commands: docs/benchmarks.md, "Export".
add_executable(prism_bench_export ${CMAKE_CURRENT_LIST_DIR}/export_bench.cc)
target_link_libraries(prism_bench_export PRIVATE prism_tracing_exporters benchmark::benchmark)

# Export load programs: batching at a steady span rate, memory with a stalled exporter.
add_executable(prism_bench_export_load ${CMAKE_CURRENT_LIST_DIR}/export_load.cc)
target_link_libraries(prism_bench_export_load PRIVATE prism_tracing_exporters)
