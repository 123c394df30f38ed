#pragma once
// Trace file exporter: OTLP/JSON, one ExportTraceServiceRequest per line,
// appended (the OpenTelemetry Collector file exporter/receiver format).
//
// Several processes may append to the same file: each line is written with
// one write() on an O_APPEND descriptor under flock(LOCK_EX), so lines never
// interleave.
//
// Path: FileExporterOptions::path, else ResolveTraceFilePath() (below).
// Missing parent directories are created.
//
// Size cap: a line that would take the file past max_bytes first renames it
// to PATH.1 (replacing the previous one) and starts PATH afresh, so the
// trace file and its predecessor take at most about twice the cap. Writers
// in other processes notice (the path names another file) and follow. A
// file removed by hand is recreated at the next export.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "prism/tracing/env.h"
#include "prism/tracing/processor.h"

namespace prism::tracing {

inline constexpr uint64_t kDefaultTraceFileMaxMb = 20;
// 4 MiB: a full 512-span batch of the proxy's spans is far below (about
// 0.6 MiB), so only abnormal spans are ever split off or dropped.
inline constexpr size_t kTraceFileMaxLineBytes = 4 << 20;

// The data directory when nothing configures one: $PRISM_DATA_DIR when set
// and not empty, else ./.prism.
std::string DefaultDataDir();

// The trace-file path rule, written only here: the SDK's file exporter and
// the `prism` CLI resolve the path through it (the proxy's main() applies
// the same order and is to call it too), so that what a server writes is
// what `prism trace` reads:
//   1. $PRISM_TRACE_FILE, when set and not empty;
//   2. else `configured`, when not empty (the proxy's tracing.trace_file);
//   3. else <data dir>/traces.jsonl, the data dir being `data_dir` when not
//      empty (the proxy's --data-dir / data_dir), else DefaultDataDir().
// The environment wins over configuration, as for every PRISM_* and OTEL_*
// variable. The result is as given (relative paths stay relative).
std::string ResolveTraceFilePath(std::string_view configured = {}, std::string_view data_dir = {});

struct FileExporterOptions {
  std::string path;  // empty: ResolveTraceFilePath()
  // Unset: $PRISM_TRACE_FILE_MAX_MB, else kDefaultTraceFileMaxMb (in MiB);
  // 0: no cap.
  std::optional<uint64_t> max_bytes;
  // Values for PRISM_TRACE_FILE_MAX_MB when the environment leaves it unset
  // (read by MakeFileExporter only; may be null).
  const env::Defaults* environment = nullptr;
  size_t max_line_bytes = kTraceFileMaxLineBytes;
  // The path FileExporterOptions{} resolves to.
  static std::string DefaultPath();
};

std::unique_ptr<SpanExporter> MakeFileExporter(FileExporterOptions options = {});

// Creates the parent directory and opens `path` for appending, as the
// exporter will at its first export, so that a program can refuse to start
// with a trace file it cannot write. Returns why not, or "" when it can.
std::string TraceFileWriteError(const std::string& path);

}  // namespace prism::tracing
