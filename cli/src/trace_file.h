#pragma once
// Reading the local trace file (OTLP JSON, one ExportTraceServiceRequest per
// line, the Collector file format) into traces, and rendering them.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prism::cli {

// Lines nested deeper than this (arrays and objects) are skipped unparsed:
// reading and copying such a value recurses once per level, and a hostile
// attribute value 50,000 arrays deep would overflow the stack. OTLP JSON
// from our exporters is about 12 levels deep (a few more per nested
// attribute array or kvlist).
inline constexpr int kMaxJsonDepth = 64;

// True when the JSON text nests arrays/objects deeper than `limit` (strings
// are skipped; the text need not be valid JSON).
bool NestedDeeperThan(std::string_view json_text, int limit);

// What the viewer prints of text from the trace file (or from a server):
// control characters (C0, DEL, C1), invalid UTF-8 and the Unicode bidi and
// line-separator controls become visible escapes (\n, \r, \t, \x1b,
// \u{202e}), so a client cannot clear the operator's screen, set the window
// title or forge lines through a namespace, span name or attribute value.
std::string EscapeNonPrintable(std::string_view text);

struct SpanRecord {
  std::string trace_id, span_id, parent_span_id;
  std::string name;
  int kind = 0;  // OTLP enum: 1 internal, 2 server, 3 client, 4 producer, 5 consumer
  uint64_t start_ns = 0, end_ns = 0;
  int status_code = 0;  // 0 unset, 1 ok, 2 error
  std::string status_message;
  std::string service;                                   // resource service.name
  nlohmann::json attributes = nlohmann::json::object();  // key -> plain JSON value
  nlohmann::json events = nlohmann::json::array();       // [{name, time_unix_nano, attributes}]
};

struct TraceSummary {
  std::string trace_id;
  uint64_t start_ns = 0, end_ns = 0;
  std::string root_name, root_service;
  size_t span_count = 0;
  bool error = false;
};

class TraceFile {
 public:
  // Reads every line; unreadable lines are skipped and counted.
  // Also reads PATH.1, the file rotated away at the exporter's size cap.
  // With `only_lines_containing`, lines without that text are skipped
  // unparsed: `prism trace show ID` finds one trace in a 100 MB file in a
  // fraction of the time a full parse takes.
  // `details` false: span attributes and events are not kept (`trace ls`
  // needs neither).
  static absl::StatusOr<TraceFile> Load(const std::string& path,
                                        std::string_view only_lines_containing = {},
                                        bool details = true);
  // Parses one line (exposed for tests).
  bool AddLine(const std::string& line);

  std::vector<TraceSummary> Summaries() const;  // newest first
  // Exact id or unique prefix; NOT_FOUND / FAILED_PRECONDITION (ambiguous).
  absl::StatusOr<std::string> Resolve(const std::string& id_or_prefix) const;
  const std::vector<SpanRecord>* Spans(const std::string& trace_id) const;
  size_t skipped_lines() const { return skipped_; }
  // One message per line skipped for a reason worth telling the user (a
  // line nested deeper than kMaxJsonDepth), with the file and line number.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::map<std::string, std::vector<SpanRecord>> traces_;
  size_t skipped_ = 0;
  std::vector<std::string> warnings_;
  bool details_ = true;
};

// "prism trace ls" table.
void RenderList(const std::vector<TraceSummary>& traces, size_t limit, std::ostream& out);
nlohmann::json ListJson(const std::vector<TraceSummary>& traces, size_t limit);

struct WaterfallOptions {
  int bar_width = 40;
  bool attributes = false;  // print span attributes under each span
  bool color = false;
};
// "prism trace show": the span tree with services, durations and bars.
void RenderWaterfall(const std::string& trace_id, const std::vector<SpanRecord>& spans,
                     const WaterfallOptions& options, std::ostream& out);
nlohmann::json WaterfallJson(const std::string& trace_id, const std::vector<SpanRecord>& spans);

std::string FormatDuration(uint64_t ns);

}  // namespace prism::cli
