#pragma once
// Trace file exporter: OTLP/JSON, one ExportTraceServiceRequest per line,
// appended (the OpenTelemetry Collector file exporter/receiver format).
//
// Several processes may append to the same file: each line is written with
// one write() on an O_APPEND descriptor under flock(LOCK_EX), so lines never
// interleave.
//
// Path: FileExporterOptions::path, else $PRISM_TRACE_FILE, else
// ./.prism/traces.jsonl. Missing parent directories are created.
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

#include "prism/tracing/processor.h"

namespace prism::tracing {

inline constexpr const char* kDefaultTraceFile = "./.prism/traces.jsonl";

inline constexpr uint64_t kDefaultTraceFileMaxMb = 20;
// 4 MiB: a full 512-span batch of the proxy's spans is far below (about
// 0.6 MiB), so only abnormal spans are ever split off or dropped.
inline constexpr size_t kTraceFileMaxLineBytes = 4 << 20;

struct FileExporterOptions {
  std::string path;  // empty: $PRISM_TRACE_FILE, else kDefaultTraceFile
  // Unset: $PRISM_TRACE_FILE_MAX_MB, else kDefaultTraceFileMaxMb (in MiB);
  // 0: no cap.
  std::optional<uint64_t> max_bytes;
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
