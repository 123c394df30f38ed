#include "trace_file.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include "prism/tracing/env.h"

namespace prism::cli {
namespace {

using nlohmann::json;

uint64_t ToU64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(0, v.get<int64_t>()));
  if (v.is_string()) return std::strtoull(v.get<std::string>().c_str(), nullptr, 10);
  return 0;
}

// OTLP AnyValue -> plain JSON.
json AnyValue(const json& v) {
  if (!v.is_object()) return nullptr;
  if (auto it = v.find("stringValue"); it != v.end()) return *it;
  if (auto it = v.find("boolValue"); it != v.end()) return *it;
  if (auto it = v.find("intValue"); it != v.end()) {
    if (it->is_string()) return std::strtoll(it->get<std::string>().c_str(), nullptr, 10);
    return *it;
  }
  if (auto it = v.find("doubleValue"); it != v.end()) return *it;
  if (auto it = v.find("bytesValue"); it != v.end()) return *it;
  if (auto it = v.find("arrayValue"); it != v.end()) {
    json out = json::array();
    if (it->is_object() && it->contains("values") && (*it)["values"].is_array()) {
      for (const auto& e : (*it)["values"]) out.push_back(AnyValue(e));
    }
    return out;
  }
  if (auto it = v.find("kvlistValue"); it != v.end()) {
    json out = json::object();
    if (it->is_object() && it->contains("values") && (*it)["values"].is_array()) {
      for (const auto& kv : (*it)["values"]) {
        if (kv.is_object() && kv.contains("key") && kv["key"].is_string()) {
          out[kv["key"].get<std::string>()] = AnyValue(kv.value("value", json::object()));
        }
      }
    }
    return out;
  }
  return nullptr;
}

json Attributes(const json& list) {
  json out = json::object();
  if (!list.is_array()) return out;
  for (const auto& kv : list) {
    if (!kv.is_object() || !kv.contains("key") || !kv["key"].is_string()) continue;
    out[kv["key"].get<std::string>()] = AnyValue(kv.value("value", json::object()));
  }
  return out;
}

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// Display width of UTF-8 text (code points; the box characters are narrow).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

std::string Pad(const std::string& s, size_t width) {
  size_t w = Width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string FormatTime(uint64_t ns) {
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000ULL);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03d", buf, static_cast<int>((ns / 1000000ULL) % 1000));
  return out;
}

// Escaped for the terminal (EscapeNonPrintable; other values as ASCII JSON).
std::string ValueText(const json& v) {
  if (v.is_string()) return EscapeNonPrintable(v.get<std::string>());
  return v.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace);
}

const char* KindName(int kind) {
  switch (kind) {
    case 1:
      return "internal";
    case 2:
      return "server";
    case 3:
      return "client";
    case 4:
      return "producer";
    case 5:
      return "consumer";
    default:
      return "unspecified";
  }
}

// Spans in tree order (depth-first, children by start time) with depth and
// the box-drawing prefix.
struct Row {
  const SpanRecord* span;
  int depth;
  std::string prefix;  // "├─ ", "│  └─ "
  bool orphan;         // has a parent id that is not in the file
};

std::vector<Row> TreeOrder(const std::vector<SpanRecord>& spans) {
  std::set<std::string> ids;
  for (const auto& s : spans) ids.insert(s.span_id);
  std::map<std::string, std::vector<const SpanRecord*>> children;
  std::vector<const SpanRecord*> roots;
  for (const auto& s : spans) {
    if (s.parent_span_id.empty() || !ids.count(s.parent_span_id) || s.parent_span_id == s.span_id) {
      roots.push_back(&s);
    } else {
      children[s.parent_span_id].push_back(&s);
    }
  }
  auto by_start = [](const SpanRecord* a, const SpanRecord* b) {
    return a->start_ns != b->start_ns ? a->start_ns < b->start_ns : a->span_id < b->span_id;
  };
  std::sort(roots.begin(), roots.end(), by_start);
  for (auto& [id, list] : children) std::sort(list.begin(), list.end(), by_start);
  std::vector<Row> rows;
  std::set<std::string> seen;  // guards against cycles in malformed files
  // Depth-first with an explicit stack: a trace file can hold a parent
  // chain thousands of spans long, which recursion would overflow. Past
  // kMaxDrawnDepth the tree lines stop growing (the prefix would otherwise
  // cost memory quadratic in the depth) and a "…" marks the cut.
  constexpr int kMaxDrawnDepth = 32;
  struct Item {
    const SpanRecord* span;
    int depth;
    std::string lead, branch;
    bool orphan;
  };
  std::vector<Item> stack;
  for (auto r = roots.rbegin(); r != roots.rend(); ++r) {
    stack.push_back({*r, 0, "", "", !(*r)->parent_span_id.empty()});
  }
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    const SpanRecord* s = item.span;
    if (!seen.insert(s->span_id).second) continue;
    rows.push_back({s, item.depth, item.lead + item.branch, item.orphan});
    auto it = children.find(s->span_id);
    if (it == children.end()) continue;
    std::string next_lead = item.lead;
    if (item.depth < kMaxDrawnDepth) {
      next_lead += item.branch.empty() ? "" : (item.branch == "└─ " ? "   " : "│  ");
    } else if (item.depth == kMaxDrawnDepth) {
      next_lead += "… ";
    }
    for (size_t i = it->second.size(); i-- > 0;) {
      bool last = i + 1 == it->second.size();
      stack.push_back({it->second[i], item.depth + 1, next_lead,
                       item.depth < kMaxDrawnDepth ? (last ? "└─ " : "├─ ") : "", false});
    }
  }
  return rows;
}

}  // namespace

bool NestedDeeperThan(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

std::string EscapeNonPrintable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char buf[16];
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c < 0x80) {  // C0 controls and DEL
      const char* named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : nullptr;
      if (named) {
        out += named;
      } else {
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length and code point, or an invalid byte.
    int n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    uint32_t cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    bool valid = n > 0 && i + n <= s.size();
    for (int k = 1; valid && k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      valid = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (valid) {
      valid = !((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff));
    }
    if (!valid) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
      continue;
    }
    const bool control = (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
                         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
                         cp == 0x2028 || cp == 0x2029;
    if (control) {
      std::snprintf(buf, sizeof buf, "\\u{%x}", static_cast<unsigned>(cp));
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string FormatDuration(uint64_t ns) {
  char buf[32];
  if (ns < 1000) {
    std::snprintf(buf, sizeof buf, "%llu ns", static_cast<unsigned long long>(ns));
  } else if (ns < 1000000) {
    std::snprintf(buf, sizeof buf, "%.1f µs", ns / 1e3);
  } else if (ns < 1000000000ULL) {
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f s", ns / 1e9);
  }
  return buf;
}

bool TraceFile::AddLine(const std::string& line) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return true;
  if (NestedDeeperThan(line, kMaxJsonDepth)) {
    ++skipped_;
    return false;
  }
  json doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    ++skipped_;
    return false;
  }
  auto rs = doc.find("resourceSpans");
  if (rs == doc.end() || !rs->is_array()) {
    ++skipped_;
    return false;
  }
  for (const auto& r : *rs) {
    if (!r.is_object()) continue;
    std::string service;
    if (auto res = r.find("resource"); res != r.end() && res->is_object()) {
      if (auto a = res->find("attributes"); a != res->end()) {
        json attrs = Attributes(*a);
        if (attrs.contains("service.name") && attrs["service.name"].is_string()) {
          service = attrs["service.name"].get<std::string>();
        }
      }
    }
    auto ss = r.find("scopeSpans");
    if (ss == r.end() || !ss->is_array()) continue;
    for (const auto& scope : *ss) {
      if (!scope.is_object()) continue;
      auto spans = scope.find("spans");
      if (spans == scope.end() || !spans->is_array()) continue;
      for (const auto& s : *spans) {
        if (!s.is_object()) continue;
        SpanRecord rec;
        rec.trace_id = Str(s, "traceId");
        rec.span_id = Str(s, "spanId");
        if (rec.trace_id.size() != 32 || rec.span_id.size() != 16) continue;
        rec.parent_span_id = Str(s, "parentSpanId");
        rec.name = Str(s, "name");
        if (auto k = s.find("kind"); k != s.end() && k->is_number_integer()) rec.kind = *k;
        rec.start_ns = ToU64(s.value("startTimeUnixNano", json()));
        rec.end_ns = ToU64(s.value("endTimeUnixNano", json()));
        if (rec.end_ns < rec.start_ns) rec.end_ns = rec.start_ns;
        if (auto st = s.find("status"); st != s.end() && st->is_object()) {
          if (auto c = st->find("code"); c != st->end() && c->is_number_integer()) {
            rec.status_code = *c;
          }
          rec.status_message = Str(*st, "message");
        }
        rec.service = service;
        if (details_) {
          if (auto a = s.find("attributes"); a != s.end()) rec.attributes = Attributes(*a);
          if (auto ev = s.find("events"); ev != s.end() && ev->is_array()) {
            for (const auto& e : *ev) {
              if (!e.is_object()) continue;
              auto ea = e.find("attributes");
              rec.events.push_back(
                  {{"name", Str(e, "name")},
                   {"time_unix_nano", ToU64(e.value("timeUnixNano", json()))},
                   {"attributes", ea != e.end() ? Attributes(*ea) : json::object()}});
            }
          }
        }
        traces_[rec.trace_id].push_back(std::move(rec));
      }
    }
  }
  return true;
}

absl::StatusOr<TraceFile> TraceFile::Load(const std::string& path,
                                          std::string_view only_lines_containing, bool details) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError("no trace file at " + path +
                               " (start prism-proxy or set PRISM_TRACE_FILE / --file)");
  }
  TraceFile f;
  f.details_ = details;
  std::string line;
  auto read = [&](std::istream& s, const std::string& name) {
    for (size_t number = 1; std::getline(s, line); ++number) {
      if (!only_lines_containing.empty() && line.find(only_lines_containing) == std::string::npos) {
        continue;
      }
      if (NestedDeeperThan(line, kMaxJsonDepth)) {
        ++f.skipped_;
        f.warnings_.push_back(name + ":" + std::to_string(number) +
                              ": skipped: JSON nested deeper than " +
                              std::to_string(kMaxJsonDepth) + " levels");
        continue;
      }
      f.AddLine(line);
    }
  };
  // The file the exporter rotated away at its size cap comes first: a trace
  // may have spans on both sides of a rotation.
  if (std::ifstream older(path + ".1"); older) read(older, path + ".1");
  read(in, path);
  return f;
}

std::vector<TraceSummary> TraceFile::Summaries() const {
  std::vector<TraceSummary> out;
  for (const auto& [id, spans] : traces_) {
    TraceSummary t;
    t.trace_id = id;
    t.span_count = spans.size();
    t.start_ns = UINT64_MAX;
    std::set<std::string> ids;
    for (const auto& s : spans) ids.insert(s.span_id);
    const SpanRecord* root = nullptr;
    for (const auto& s : spans) {
      t.start_ns = std::min(t.start_ns, s.start_ns);
      t.end_ns = std::max(t.end_ns, s.end_ns);
      t.error = t.error || s.status_code == 2;
      bool is_root = s.parent_span_id.empty() || !ids.count(s.parent_span_id);
      if (is_root && (!root || s.start_ns < root->start_ns)) root = &s;
    }
    if (root) {
      t.root_name = root->name;
      t.root_service = root->service;
    }
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(),
            [](const TraceSummary& a, const TraceSummary& b) { return a.start_ns > b.start_ns; });
  return out;
}

absl::StatusOr<std::string> TraceFile::Resolve(const std::string& id_or_prefix) const {
  std::string p = prism::tracing::env::ToLower(id_or_prefix);
  if (p.empty() || p.size() > 32 || p.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError("'" + id_or_prefix + "' is not a trace id (1-32 hex digits)");
  }
  auto it = traces_.lower_bound(p);
  std::vector<std::string> matches;
  for (; it != traces_.end() && it->first.compare(0, p.size(), p) == 0; ++it) {
    matches.push_back(it->first);
    if (matches.size() > 5) break;
  }
  if (matches.empty()) return absl::NotFoundError("no trace " + p + " in the trace file");
  if (matches.size() > 1) {
    std::string list;
    for (const auto& m : matches) list += "\n  " + m;
    return absl::FailedPreconditionError("prefix " + p + " matches several traces:" + list);
  }
  return matches[0];
}

const std::vector<SpanRecord>* TraceFile::Spans(const std::string& trace_id) const {
  auto it = traces_.find(trace_id);
  return it == traces_.end() ? nullptr : &it->second;
}

void RenderList(const std::vector<TraceSummary>& traces, size_t limit, std::ostream& out) {
  if (traces.empty()) {
    out << "no traces yet\n";
    return;
  }
  size_t n = std::min(limit, traces.size());
  size_t root_w = 4;
  for (size_t i = 0; i < n; ++i) {
    root_w = std::max(
        root_w, Width(EscapeNonPrintable(traces[i].root_service + " " + traces[i].root_name)));
  }
  root_w = std::min<size_t>(root_w, 60);
  out << Pad("TIME", 24) << Pad("TRACE ID", 34) << Pad("ROOT", root_w + 2) << Pad("DURATION", 12)
      << Pad("SPANS", 7) << "ERROR\n";
  // Oldest of the shown first, newest last (closest to the prompt).
  for (size_t k = n; k-- > 0;) {
    const auto& t = traces[k];
    std::string root = EscapeNonPrintable(
        t.root_service.empty() ? t.root_name : t.root_service + " " + t.root_name);
    out << Pad(FormatTime(t.start_ns), 24) << Pad(EscapeNonPrintable(t.trace_id), 34)
        << Pad(root, root_w + 2) << Pad(FormatDuration(t.end_ns - t.start_ns), 12)
        << Pad(std::to_string(t.span_count), 7) << (t.error ? "✗ error" : "") << "\n";
  }
  if (traces.size() > n) out << "(" << traces.size() - n << " older traces not shown; --limit)\n";
}

json ListJson(const std::vector<TraceSummary>& traces, size_t limit) {
  json out = json::array();
  for (size_t i = 0; i < std::min(limit, traces.size()); ++i) {
    const auto& t = traces[i];
    out.push_back({{"trace_id", t.trace_id},
                   {"start_unix_nano", t.start_ns},
                   {"duration_ms", (t.end_ns - t.start_ns) / 1e6},
                   {"root", t.root_name},
                   {"root_service", t.root_service},
                   {"spans", t.span_count},
                   {"error", t.error}});
  }
  return out;
}

void RenderWaterfall(const std::string& trace_id, const std::vector<SpanRecord>& spans,
                     const WaterfallOptions& o, std::ostream& out) {
  auto rows = TreeOrder(spans);
  uint64_t t0 = UINT64_MAX, t1 = 0;
  std::set<std::string> services;
  int errors = 0;
  for (const auto& s : spans) {
    t0 = std::min(t0, s.start_ns);
    t1 = std::max(t1, s.end_ns);
    services.insert(s.service);
    errors += s.status_code == 2;
  }
  uint64_t total = t1 > t0 ? t1 - t0 : 1;
  out << "trace " << EscapeNonPrintable(trace_id) << "  " << FormatTime(t0) << "  "
      << FormatDuration(t1 - t0) << "  " << spans.size() << " spans, " << services.size()
      << " services";
  if (errors) out << ", " << errors << " with errors";
  out << "\n\n";
  size_t name_w = 4, svc_w = 7;
  for (const auto& r : rows) {
    name_w = std::max(name_w, Width(r.prefix + EscapeNonPrintable(r.span->name)));
    svc_w = std::max(svc_w, Width(EscapeNonPrintable(r.span->service)));
  }
  const char* red = o.color ? "\033[31m" : "";
  const char* reset = o.color ? "\033[0m" : "";
  out << Pad("SPAN", name_w + 2) << Pad("SERVICE", svc_w + 2) << Pad("DURATION", 11)
      << "TIMELINE\n";
  for (const auto& r : rows) {
    const SpanRecord& s = *r.span;
    uint64_t dur = s.end_ns - s.start_ns;
    int w = std::max(o.bar_width, 10);
    int off = static_cast<int>((s.start_ns - t0) * static_cast<double>(w) / total);
    int len = static_cast<int>(dur * static_cast<double>(w) / total + 0.5);
    off = std::clamp(off, 0, w - 1);
    len = std::clamp(len, 1, w - off);
    std::string bar = "|" + std::string(off, ' ');
    for (int i = 0; i < len; ++i) bar += "█";
    bar += std::string(w - off - len, ' ') + "|";
    std::string dstr = FormatDuration(dur);
    out << Pad(r.prefix + EscapeNonPrintable(s.name), name_w + 2)
        << Pad(EscapeNonPrintable(s.service), svc_w + 2)
        << std::string(Width(dstr) < 9 ? 9 - Width(dstr) : 0, ' ') << dstr << "  ";
    if (s.status_code == 2) out << red;
    out << bar;
    if (s.status_code == 2) {
      out << "  ✗ " << (s.status_message.empty() ? "error" : EscapeNonPrintable(s.status_message));
    }
    out << reset;
    if (r.orphan) {
      out << "  (parent " << EscapeNonPrintable(s.parent_span_id) << " not in the file)";
    }
    out << "\n";
    if (o.attributes) {
      std::string lead(Width(r.prefix), ' ');
      lead += "    ";
      out << lead << "span " << EscapeNonPrintable(s.span_id) << " (" << KindName(s.kind) << ")"
          << (s.parent_span_id.empty() ? "" : ", parent " + EscapeNonPrintable(s.parent_span_id))
          << "\n";
      for (const auto& [k, v] : s.attributes.items())
        out << lead << EscapeNonPrintable(k) << " = " << ValueText(v) << "\n";
      for (const auto& e : s.events) {
        out << lead << "event " << EscapeNonPrintable(e.value("name", "")) << ":";
        for (const auto& [k, v] : e["attributes"].items()) {
          out << " " << EscapeNonPrintable(k) << "=" << ValueText(v);
        }
        out << "\n";
      }
    }
  }
}

json WaterfallJson(const std::string& trace_id, const std::vector<SpanRecord>& spans) {
  auto rows = TreeOrder(spans);
  uint64_t t0 = UINT64_MAX, t1 = 0;
  for (const auto& s : spans) {
    t0 = std::min(t0, s.start_ns);
    t1 = std::max(t1, s.end_ns);
  }
  json list = json::array();
  bool error = false;
  for (const auto& r : rows) {
    const SpanRecord& s = *r.span;
    error = error || s.status_code == 2;
    list.push_back({{"span_id", s.span_id},
                    {"parent_span_id", s.parent_span_id},
                    {"name", s.name},
                    {"service", s.service},
                    {"kind", KindName(s.kind)},
                    {"depth", r.depth},
                    {"start_unix_nano", s.start_ns},
                    {"end_unix_nano", s.end_ns},
                    {"offset_ms", (s.start_ns - t0) / 1e6},
                    {"duration_ms", (s.end_ns - s.start_ns) / 1e6},
                    {"status",
                     {{"code", s.status_code == 2   ? "ERROR"
                               : s.status_code == 1 ? "OK"
                                                    : "UNSET"},
                      {"message", s.status_message}}},
                    {"attributes", s.attributes},
                    {"events", s.events}});
  }
  return {{"trace_id", trace_id},
          {"start_unix_nano", t0},
          {"duration_ms", (t1 - t0) / 1e6},
          {"error", error},
          {"spans", list}};
}

}  // namespace prism::cli
