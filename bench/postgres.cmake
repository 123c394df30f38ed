# The sqlcommenter comment's cost at the statement: prism_bench_pg_statements
# (needs a PostgreSQL: PRISM_PG_CONNINFO; scripts/bench-proxy-postgres.sh runs it).
add_executable(prism_bench_pg_statements ${CMAKE_CURRENT_LIST_DIR}/pg_statement_bench.cc)
target_link_libraries(prism_bench_pg_statements PRIVATE prism_plugin_postgres_lib
  benchmark::benchmark)
