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

#include <memory>
#include <string>

#include "prism/tracing/processor.h"

namespace prism::tracing {

inline constexpr const char* kDefaultTraceFile = "./.prism/traces.jsonl";

struct FileExporterOptions {
  std::string path;  // empty: $PRISM_TRACE_FILE, else kDefaultTraceFile
  // The path FileExporterOptions{} resolves to.
  static std::string DefaultPath();
};

std::unique_ptr<SpanExporter> MakeFileExporter(FileExporterOptions options = {});

// Creates the parent directory and opens `path` for appending, as the
// exporter will at its first export, so that a program can refuse to start
// with a trace file it cannot write. Returns why not, or "" when it can.
std::string TraceFileWriteError(const std::string& path);

}  // namespace prism::tracing
