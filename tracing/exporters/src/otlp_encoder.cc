// OTLP encoders written from the opentelemetry-proto field definitions
// (trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto,
// collector/trace/v1/trace_service.proto) and docs/specification.md (JSON).

#include "prism/tracing/exporters/otlp_encoder.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <variant>
#include <vector>

#include "utf8.h"

namespace prism::tracing::otlp {
namespace {

// ---------------------------------------------------------------------------
// Grouping by resource and scope.

struct ScopeGroup {
  const InstrumentationScope* scope;
  std::vector<const SpanData*> spans;
};
struct ResourceGroup {
  const Resource* resource;
  std::vector<ScopeGroup> scopes;
};

std::vector<ResourceGroup> Group(SpanBatch spans) {
  std::vector<ResourceGroup> groups;
  ResourceGroup* last_r = nullptr;
  ScopeGroup* last_s = nullptr;
  for (const auto& sp : spans) {
    if (!sp) continue;
    const Resource* r = &sp->resource();
    const InstrumentationScope* s = &sp->scope();
    if (last_s == nullptr || last_r->resource != r || last_s->scope != s) {
      last_r = nullptr;
      for (auto& g : groups) {
        if (g.resource == r) last_r = &g;
      }
      if (last_r == nullptr) {
        groups.push_back(ResourceGroup{r, {}});
        last_r = &groups.back();
      }
      last_s = nullptr;
      for (auto& sg : last_r->scopes) {
        if (sg.scope == s) last_s = &sg;
      }
      if (last_s == nullptr) {
        last_r->scopes.push_back(ScopeGroup{s, {}});
        last_s = &last_r->scopes.back();
        last_s->spans.reserve(spans.size());
      }
    }
    last_s->spans.push_back(sp.get());
  }
  return groups;
}

// ---------------------------------------------------------------------------
// Protobuf.

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

inline size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

class PbWriter {
 public:
  explicit PbWriter(std::string& out) : out_(out) {}

  void Varint(uint64_t v) {
    char buf[10];
    size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void Tag(uint32_t field, Wire wire) { Varint((field << 3) | wire); }
  void VarintField(uint32_t field, uint64_t v) {
    Tag(field, kVarint);
    Varint(v);
  }
  void VarintFieldNonZero(uint32_t field, uint64_t v) {
    if (v != 0) VarintField(field, v);
  }
  void Fixed64Field(uint32_t field, uint64_t v) {
    Tag(field, kFixed64);
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 8);
  }
  void Fixed32Field(uint32_t field, uint32_t v) {
    Tag(field, kFixed32);
    char buf[4];
    for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 4);
  }
  void BytesField(uint32_t field, const void* data, size_t n) {
    Tag(field, kLen);
    Varint(n);
    out_.append(static_cast<const char*>(data), n);
  }
  // Strings must be UTF-8 on the wire (receivers such as the Collector
  // reject the request otherwise): invalid sequences become U+FFFD.
  void StringField(uint32_t field, std::string_view s) {
    if (utf8::IsValid(s)) {
      BytesField(field, s.data(), s.size());
    } else {
      std::string fixed = utf8::Sanitize(s);
      BytesField(field, fixed.data(), fixed.size());
    }
  }
  void StringFieldNonEmpty(uint32_t field, std::string_view s) {
    if (!s.empty()) StringField(field, s);
  }

  // Length-delimited sub-message with a back-patched length: `reserve` bytes
  // are set aside for the length varint and the body is moved only when the
  // guess was wrong.
  size_t Begin(uint32_t field, size_t reserve) {
    Tag(field, kLen);
    size_t pos = out_.size();
    out_.append(reserve, '\0');
    return pos;
  }
  void End(size_t pos, size_t reserve) {
    size_t len = out_.size() - pos - reserve;
    size_t n = VarintSize(len);
    if (n > reserve) {
      out_.insert(pos, n - reserve, '\0');
    } else if (n < reserve) {
      out_.erase(pos, reserve - n);
    }
    char* p = out_.data() + pos;
    uint64_t v = len;
    while (v >= 0x80) {
      *p++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p = static_cast<char>(v);
  }

  std::string& out() { return out_; }

 private:
  std::string& out_;
};

template <typename T>
void PbArrayElement(PbWriter& w, const T& v) {
  size_t any = w.Begin(1, 1);  // ArrayValue.values
  if constexpr (std::is_same_v<T, bool>) {
    w.VarintField(2, v ? 1 : 0);
  } else if constexpr (std::is_same_v<T, int64_t>) {
    w.VarintField(3, static_cast<uint64_t>(v));
  } else if constexpr (std::is_same_v<T, double>) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    w.Fixed64Field(4, bits);
  } else {
    w.StringField(1, v);
  }
  w.End(any, 1);
}

// Writes the body of an AnyValue.
void PbAnyValueBody(PbWriter& w, const AttributeValue& value) {
  switch (value.index()) {
    case 0:
      w.VarintField(2, std::get<bool>(value) ? 1 : 0);
      break;
    case 1:
      w.VarintField(3, static_cast<uint64_t>(std::get<int64_t>(value)));
      break;
    case 2: {
      uint64_t bits;
      double d = std::get<double>(value);
      std::memcpy(&bits, &d, 8);
      w.Fixed64Field(4, bits);
      break;
    }
    case 3:
      w.StringField(1, std::get<std::string>(value));
      break;
    default: {
      size_t arr = w.Begin(5, 2);
      std::visit(
          [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::vector<bool>>) {
              for (bool b : v) PbArrayElement(w, b);
            } else if constexpr (std::is_same_v<V, std::vector<int64_t>> ||
                                 std::is_same_v<V, std::vector<double>> ||
                                 std::is_same_v<V, std::vector<std::string>>) {
              for (const auto& e : v) PbArrayElement(w, e);
            }
          },
          value);
      w.End(arr, 2);
      break;
    }
  }
}

void PbAttributes(PbWriter& w, uint32_t field, const Attributes& attributes) {
  for (const auto& kv : attributes) {
    size_t kvpos = w.Begin(field, 1);
    w.StringField(1, kv.key);
    size_t any = w.Begin(2, 1);
    PbAnyValueBody(w, kv.value);
    w.End(any, 1);
    w.End(kvpos, 1);
  }
}

void PbSpan(PbWriter& w, const SpanData& s) {
  size_t pos = w.Begin(2, 2);  // ScopeSpans.spans
  w.BytesField(1, s.context.trace_id().bytes().data(), TraceId::kSize);
  w.BytesField(2, s.context.span_id().bytes().data(), SpanId::kSize);
  if (!s.context.trace_state().empty()) w.StringField(3, s.context.trace_state().ToHeader());
  if (s.parent_span_id.IsValid()) w.BytesField(4, s.parent_span_id.bytes().data(), SpanId::kSize);
  w.StringFieldNonEmpty(5, s.name);
  w.VarintField(6, static_cast<uint64_t>(s.kind));
  w.Fixed64Field(7, s.start_unix_nano);
  w.Fixed64Field(8, s.end_unix_nano);
  PbAttributes(w, 9, s.attributes);
  w.VarintFieldNonZero(10, s.dropped_attributes_count);
  for (const auto& e : s.events) {
    size_t ep = w.Begin(11, 1);
    w.Fixed64Field(1, e.time_unix_nano);
    w.StringFieldNonEmpty(2, e.name);
    PbAttributes(w, 3, e.attributes);
    w.VarintFieldNonZero(4, e.dropped_attributes_count);
    w.End(ep, 1);
  }
  w.VarintFieldNonZero(12, s.dropped_events_count);
  for (const auto& l : s.links) {
    size_t lp = w.Begin(13, 1);
    w.BytesField(1, l.context.trace_id().bytes().data(), TraceId::kSize);
    w.BytesField(2, l.context.span_id().bytes().data(), SpanId::kSize);
    if (!l.context.trace_state().empty()) w.StringField(3, l.context.trace_state().ToHeader());
    PbAttributes(w, 4, l.attributes);
    w.VarintFieldNonZero(5, l.dropped_attributes_count);
    w.Fixed32Field(6, LinkFlags(l));
    w.End(lp, 1);
  }
  w.VarintFieldNonZero(14, s.dropped_links_count);
  if (s.status != StatusCode::kUnset || !s.status_message.empty()) {
    size_t st = w.Begin(15, 1);
    w.StringFieldNonEmpty(2, s.status_message);
    w.VarintFieldNonZero(3, static_cast<uint64_t>(s.status));
    w.End(st, 1);
  }
  w.Fixed32Field(16, SpanFlags(s));
  w.End(pos, 2);
}

// ---------------------------------------------------------------------------
// JSON.

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  void Raw(std::string_view s) { out_.append(s); }
  void Char(char c) { out_.push_back(c); }
  void String(std::string_view s) {
    out_.push_back('"');
    if (!utf8::IsValid(s)) {
      std::string fixed = utf8::Sanitize(s);
      Escaped(fixed);
    } else {
      Escaped(s);
    }
    out_.push_back('"');
  }
  void Key(std::string_view k) {  // keys are literals without escapes
    out_.push_back('"');
    out_.append(k);
    out_.append("\":");
  }
  void Hex(const uint8_t* data, size_t n) {
    out_.push_back('"');
    size_t pos = out_.size();
    out_.resize(pos + 2 * n);
    hex::Encode(data, n, out_.data() + pos);
    out_.push_back('"');
  }
  void Uint(uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }
  void Int(int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }
  void QuotedUint(uint64_t v) {
    out_.push_back('"');
    Uint(v);
    out_.push_back('"');
  }
  void QuotedInt(int64_t v) {
    out_.push_back('"');
    Int(v);
    out_.push_back('"');
  }
  void Double(double d) {
    if (std::isnan(d)) {
      out_.append("\"NaN\"");
    } else if (std::isinf(d)) {
      out_.append(d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, d);
      out_.append(buf, r.ptr);
    }
  }

 private:
  void Escaped(std::string_view s) {
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(s.data() + start, i - start);
      start = i + 1;
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\r':
          out_.append("\\r");
          break;
        case '\t':
          out_.append("\\t");
          break;
        case '\b':
          out_.append("\\b");
          break;
        case '\f':
          out_.append("\\f");
          break;
        default: {
          static const char* digits = "0123456789abcdef";
          char buf[6] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 15]};
          out_.append(buf, 6);
        }
      }
    }
    out_.append(s.data() + start, s.size() - start);
  }
  std::string& out_;
};

template <typename T>
void JsonScalar(JsonWriter& w, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    w.Raw("{\"boolValue\":");
    w.Raw(v ? "true" : "false");
  } else if constexpr (std::is_same_v<T, int64_t>) {
    w.Raw("{\"intValue\":");
    w.QuotedInt(v);
  } else if constexpr (std::is_same_v<T, double>) {
    w.Raw("{\"doubleValue\":");
    w.Double(v);
  } else {
    w.Raw("{\"stringValue\":");
    w.String(v);
  }
  w.Char('}');
}

void JsonAnyValue(JsonWriter& w, const AttributeValue& value) {
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, bool> || std::is_same_v<V, int64_t> ||
                      std::is_same_v<V, double> || std::is_same_v<V, std::string>) {
          JsonScalar(w, v);
        } else {
          w.Raw("{\"arrayValue\":{\"values\":[");
          bool first = true;
          for (const auto& e : v) {
            if (!first) w.Char(',');
            first = false;
            if constexpr (std::is_same_v<V, std::vector<bool>>) {
              JsonScalar(w, static_cast<bool>(e));
            } else {
              JsonScalar(w, e);
            }
          }
          w.Raw("]}}");
        }
      },
      value);
}

void JsonAttributes(JsonWriter& w, const Attributes& attributes) {
  w.Raw("\"attributes\":[");
  bool first = true;
  for (const auto& kv : attributes) {
    if (!first) w.Char(',');
    first = false;
    w.Raw("{\"key\":");
    w.String(kv.key);
    w.Raw(",\"value\":");
    JsonAnyValue(w, kv.value);
    w.Char('}');
  }
  w.Char(']');
}

void JsonSpan(JsonWriter& w, const SpanData& s) {
  w.Raw("{\"traceId\":");
  w.Hex(s.context.trace_id().bytes().data(), TraceId::kSize);
  w.Raw(",\"spanId\":");
  w.Hex(s.context.span_id().bytes().data(), SpanId::kSize);
  if (!s.context.trace_state().empty()) {
    w.Raw(",\"traceState\":");
    w.String(s.context.trace_state().ToHeader());
  }
  if (s.parent_span_id.IsValid()) {
    w.Raw(",\"parentSpanId\":");
    w.Hex(s.parent_span_id.bytes().data(), SpanId::kSize);
  }
  w.Raw(",\"flags\":");
  w.Uint(SpanFlags(s));
  w.Raw(",\"name\":");
  w.String(s.name);
  w.Raw(",\"kind\":");
  w.Uint(static_cast<uint64_t>(s.kind));
  w.Raw(",\"startTimeUnixNano\":");
  w.QuotedUint(s.start_unix_nano);
  w.Raw(",\"endTimeUnixNano\":");
  w.QuotedUint(s.end_unix_nano);
  w.Char(',');
  JsonAttributes(w, s.attributes);
  if (s.dropped_attributes_count) {
    w.Raw(",\"droppedAttributesCount\":");
    w.Uint(s.dropped_attributes_count);
  }
  if (!s.events.empty()) {
    w.Raw(",\"events\":[");
    bool first = true;
    for (const auto& e : s.events) {
      if (!first) w.Char(',');
      first = false;
      w.Raw("{\"timeUnixNano\":");
      w.QuotedUint(e.time_unix_nano);
      w.Raw(",\"name\":");
      w.String(e.name);
      w.Char(',');
      JsonAttributes(w, e.attributes);
      if (e.dropped_attributes_count) {
        w.Raw(",\"droppedAttributesCount\":");
        w.Uint(e.dropped_attributes_count);
      }
      w.Char('}');
    }
    w.Char(']');
  }
  if (s.dropped_events_count) {
    w.Raw(",\"droppedEventsCount\":");
    w.Uint(s.dropped_events_count);
  }
  if (!s.links.empty()) {
    w.Raw(",\"links\":[");
    bool first = true;
    for (const auto& l : s.links) {
      if (!first) w.Char(',');
      first = false;
      w.Raw("{\"traceId\":");
      w.Hex(l.context.trace_id().bytes().data(), TraceId::kSize);
      w.Raw(",\"spanId\":");
      w.Hex(l.context.span_id().bytes().data(), SpanId::kSize);
      if (!l.context.trace_state().empty()) {
        w.Raw(",\"traceState\":");
        w.String(l.context.trace_state().ToHeader());
      }
      w.Char(',');
      JsonAttributes(w, l.attributes);
      if (l.dropped_attributes_count) {
        w.Raw(",\"droppedAttributesCount\":");
        w.Uint(l.dropped_attributes_count);
      }
      w.Raw(",\"flags\":");
      w.Uint(LinkFlags(l));
      w.Char('}');
    }
    w.Char(']');
  }
  if (s.dropped_links_count) {
    w.Raw(",\"droppedLinksCount\":");
    w.Uint(s.dropped_links_count);
  }
  if (s.status != StatusCode::kUnset || !s.status_message.empty()) {
    w.Raw(",\"status\":{");
    bool need_comma = false;
    if (!s.status_message.empty()) {
      w.Raw("\"message\":");
      w.String(s.status_message);
      need_comma = true;
    }
    if (s.status != StatusCode::kUnset) {
      if (need_comma) w.Char(',');
      w.Raw("\"code\":");
      w.Uint(static_cast<uint64_t>(s.status));
    }
    w.Char('}');
  }
  w.Char('}');
}

// ---------------------------------------------------------------------------
// Protobuf reading (responses).

class PbReader {
 public:
  explicit PbReader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}
  bool done() const { return p_ == end_; }
  bool Varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      uint8_t b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // Reads one field; for length-delimited fields `bytes` is set.
  bool Next(uint32_t& field, uint32_t& wire, uint64_t& value, std::string_view& bytes) {
    uint64_t tag;
    if (!Varint(tag)) return false;
    field = static_cast<uint32_t>(tag >> 3);
    wire = static_cast<uint32_t>(tag & 7);
    switch (wire) {
      case kVarint:
        return Varint(value);
      case kFixed64:
        if (end_ - p_ < 8) return false;
        std::memcpy(&value, p_, 8);
        p_ += 8;
        return true;
      case kFixed32: {
        if (end_ - p_ < 4) return false;
        uint32_t v32;
        std::memcpy(&v32, p_, 4);
        value = v32;
        p_ += 4;
        return true;
      }
      case kLen: {
        uint64_t n;
        if (!Varint(n) || n > static_cast<uint64_t>(end_ - p_)) return false;
        bytes = std::string_view(p_, n);
        p_ += n;
        return true;
      }
      default:
        return false;
    }
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace

uint32_t SpanFlags(const SpanData& span) {
  return span.context.flags() | kSpanFlagsHasIsRemote |
         (span.parent_is_remote ? kSpanFlagsIsRemote : 0u);
}

uint32_t LinkFlags(const Link& link) {
  return link.context.flags() | kSpanFlagsHasIsRemote |
         (link.context.IsRemote() ? kSpanFlagsIsRemote : 0u);
}

void EncodeProtobuf(SpanBatch spans, std::string& out) {
  out.reserve(out.size() + 64 + spans.size() * 256);
  PbWriter w(out);
  for (const auto& rg : Group(spans)) {
    size_t rs = w.Begin(1, 3);   // ExportTraceServiceRequest.resource_spans
    size_t res = w.Begin(1, 2);  // ResourceSpans.resource
    PbAttributes(w, 1, rg.resource->attributes());
    w.End(res, 2);
    for (const auto& sg : rg.scopes) {
      size_t ss = w.Begin(2, 3);  // ResourceSpans.scope_spans
      size_t sc = w.Begin(1, 1);  // ScopeSpans.scope
      w.StringFieldNonEmpty(1, sg.scope->name);
      w.StringFieldNonEmpty(2, sg.scope->version);
      PbAttributes(w, 3, sg.scope->attributes);
      w.End(sc, 1);
      for (const SpanData* s : sg.spans) PbSpan(w, *s);
      w.StringFieldNonEmpty(3, sg.scope->schema_url);
      w.End(ss, 3);
    }
    w.StringFieldNonEmpty(3, rg.resource->schema_url());
    w.End(rs, 3);
  }
}

void EncodeJson(SpanBatch spans, std::string& out) {
  out.reserve(out.size() + 64 + spans.size() * 512);
  JsonWriter w(out);
  w.Raw("{\"resourceSpans\":[");
  bool first_r = true;
  for (const auto& rg : Group(spans)) {
    if (!first_r) w.Char(',');
    first_r = false;
    w.Raw("{\"resource\":{");
    JsonAttributes(w, rg.resource->attributes());
    w.Raw("},\"scopeSpans\":[");
    bool first_s = true;
    for (const auto& sg : rg.scopes) {
      if (!first_s) w.Char(',');
      first_s = false;
      w.Raw("{\"scope\":{\"name\":");
      w.String(sg.scope->name);
      if (!sg.scope->version.empty()) {
        w.Raw(",\"version\":");
        w.String(sg.scope->version);
      }
      if (!sg.scope->attributes.empty()) {
        w.Char(',');
        JsonAttributes(w, sg.scope->attributes);
      }
      w.Raw("},\"spans\":[");
      bool first = true;
      for (const SpanData* s : sg.spans) {
        if (!first) w.Char(',');
        first = false;
        JsonSpan(w, *s);
      }
      w.Char(']');
      if (!sg.scope->schema_url.empty()) {
        w.Raw(",\"schemaUrl\":");
        w.String(sg.scope->schema_url);
      }
      w.Char('}');
    }
    w.Char(']');
    if (!rg.resource->schema_url().empty()) {
      w.Raw(",\"schemaUrl\":");
      w.String(rg.resource->schema_url());
    }
    w.Char('}');
  }
  w.Raw("]}");
}

std::optional<PartialSuccess> DecodeResponseProtobuf(std::string_view body) {
  PartialSuccess result;
  PbReader r(body);
  while (!r.done()) {
    uint32_t field, wire;
    uint64_t value = 0;
    std::string_view bytes;
    if (!r.Next(field, wire, value, bytes)) return std::nullopt;
    if (field == 1 && wire == kLen) {
      PbReader ps(bytes);
      while (!ps.done()) {
        if (!ps.Next(field, wire, value, bytes)) return std::nullopt;
        if (field == 1 && wire == kVarint) result.rejected_spans = static_cast<int64_t>(value);
        if (field == 2 && wire == kLen) result.error_message = std::string(bytes);
      }
    }
  }
  return result;
}

std::optional<PartialSuccess> DecodeResponseJson(std::string_view body) {
  PartialSuccess result;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return result;
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto it = j.find("partialSuccess");
  if (it == j.end() || !it->is_object()) return result;
  auto rs = it->find("rejectedSpans");
  if (rs != it->end()) {
    if (rs->is_number_integer()) {
      result.rejected_spans = rs->get<int64_t>();
    } else if (rs->is_string()) {
      const std::string& s = rs->get_ref<const std::string&>();
      std::from_chars(s.data(), s.data() + s.size(), result.rejected_spans);
    }
  }
  auto em = it->find("errorMessage");
  if (em != it->end() && em->is_string()) result.error_message = em->get<std::string>();
  return result;
}

std::optional<RpcStatus> DecodeRpcStatus(std::string_view body) {
  RpcStatus st;
  PbReader r(body);
  while (!r.done()) {
    uint32_t field, wire;
    uint64_t value = 0;
    std::string_view bytes;
    if (!r.Next(field, wire, value, bytes)) return std::nullopt;
    if (field == 1 && wire == kVarint) st.code = static_cast<int32_t>(value);
    if (field == 2 && wire == kLen) st.message = std::string(bytes);
    if (field == 3 && wire == kLen) {  // google.protobuf.Any
      std::string_view type_url, any_value;
      PbReader any(bytes);
      while (!any.done()) {
        if (!any.Next(field, wire, value, bytes)) return std::nullopt;
        if (field == 1 && wire == kLen) type_url = bytes;
        if (field == 2 && wire == kLen) any_value = bytes;
      }
      if (type_url.ends_with("/google.rpc.RetryInfo")) {
        int64_t ms = 0;
        PbReader ri(any_value);
        while (!ri.done()) {
          if (!ri.Next(field, wire, value, bytes)) return std::nullopt;
          if (field == 1 && wire == kLen) {  // google.protobuf.Duration
            PbReader d(bytes);
            while (!d.done()) {
              if (!d.Next(field, wire, value, bytes)) return std::nullopt;
              if (field == 1 && wire == kVarint) ms += static_cast<int64_t>(value) * 1000;
              if (field == 2 && wire == kVarint) ms += static_cast<int64_t>(value) / 1000000;
            }
          }
        }
        st.retry_delay_ms = ms;
      }
    }
  }
  return st;
}

}  // namespace prism::tracing::otlp
