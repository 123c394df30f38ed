#include "prism/tracing/exporters/console_exporter.h"

#include <charconv>
#include <cstdio>
#include <mutex>

#include "prism/tracing/diagnostics.h"

namespace prism::tracing {
namespace {

void AppendValue(std::string& out, const AttributeValue& v) {
  std::visit(
      [&](const auto& x) {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<V, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<V, int64_t> || std::is_same_v<V, double>) {
          char buf[32];
          auto r = std::to_chars(buf, buf + sizeof buf, x);
          out.append(buf, r.ptr);
        } else if constexpr (std::is_same_v<V, std::string>) {
          out.push_back('"');
          out += x;
          out.push_back('"');
        } else {
          out.push_back('[');
          bool first = true;
          for (const auto& e : x) {
            if (!first) out.push_back(',');
            first = false;
            AppendValue(out, AttributeValue(static_cast<typename V::value_type>(e)));
          }
          out.push_back(']');
        }
      },
      v);
}

void AppendAttributes(std::string& out, const Attributes& attributes) {
  out += '{';
  bool first = true;
  for (const auto& kv : attributes) {
    if (!first) out += ' ';
    first = false;
    out += kv.key;
    out += '=';
    AppendValue(out, kv.value);
  }
  out += '}';
}

std::string Millis(uint64_t from, uint64_t to) {
  char buf[32];
  double ms = to >= from ? static_cast<double>(to - from) / 1e6 : 0.0;
  std::snprintf(buf, sizeof buf, "%.3fms", ms);
  return buf;
}

class ConsoleExporter : public SpanExporter {
 public:
  explicit ConsoleExporter(std::FILE* out) : out_(out) {}
  ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) override {
    std::string text;
    for (const auto& s : spans) {
      text += FormatSpanForConsole(*s);
      text += '\n';
    }
    std::lock_guard lock(mutex_);
    std::fwrite(text.data(), 1, text.size(), out_);
    std::fflush(out_);
    return ExportResult::kSuccess;
  }
  bool Shutdown(Timeout) override { return true; }

 private:
  std::mutex mutex_;
  std::FILE* out_;
};

}  // namespace

std::string FormatSpanForConsole(const SpanData& s) {
  std::string out = "span \"" + s.name + "\" " + std::string(ToString(s.kind)) + " " +
                    Millis(s.start_unix_nano, s.end_unix_nano) +
                    " trace=" + s.context.trace_id().ToHex() +
                    " span=" + s.context.span_id().ToHex() +
                    " parent=" + (s.parent_span_id.IsValid() ? s.parent_span_id.ToHex() : "-");
  if (s.parent_is_remote) out += "(remote)";
  if (s.status == StatusCode::kError) {
    out += " status=ERROR";
    if (!s.status_message.empty()) out += " \"" + s.status_message + "\"";
  } else if (s.status == StatusCode::kOk) {
    out += " status=OK";
  }
  out += " scope=" + (s.scope().name.empty() ? std::string("-") : s.scope().name);
  if (s.attribute_count() != 0) {
    out += " attrs";
    AppendAttributes(out, s.shared_attributes ? s.AllAttributes() : s.attributes);
  }
  if (!s.events.empty()) {
    out += " events[";
    bool first = true;
    for (const auto& e : s.events) {
      if (!first) out += ' ';
      first = false;
      out += e.name + "@+" + Millis(s.start_unix_nano, e.time_unix_nano);
      if (!e.attributes.empty()) AppendAttributes(out, e.attributes);
    }
    out += ']';
  }
  if (!s.links.empty()) {
    out += " links[";
    bool first = true;
    for (const auto& l : s.links) {
      if (!first) out += ' ';
      first = false;
      out += l.context.trace_id().ToHex() + "/" + l.context.span_id().ToHex();
    }
    out += ']';
  }
  if (s.dropped_attributes_count || s.dropped_events_count || s.dropped_links_count) {
    out += " dropped(attrs=" + std::to_string(s.dropped_attributes_count) +
           " events=" + std::to_string(s.dropped_events_count) +
           " links=" + std::to_string(s.dropped_links_count) + ")";
  }
  return out;
}

std::unique_ptr<SpanExporter> MakeConsoleExporter(std::FILE* out) {
  return std::make_unique<ConsoleExporter>(out);
}

}  // namespace prism::tracing
