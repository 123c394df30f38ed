#include "sqlcommenter.h"

#include <algorithm>

#include "prism/tracing/propagation.h"

namespace prism::postgres {

std::string SqlCommentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string BuildSqlComment(std::vector<std::pair<std::string, std::string>> pairs) {
  if (pairs.empty()) return "";
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(pairs.size());
  for (auto& [k, v] : pairs) enc.emplace_back(SqlCommentEncode(k), SqlCommentEncode(v));
  std::sort(enc.begin(), enc.end());
  std::string out = "/*";
  for (size_t i = 0; i < enc.size(); ++i) {
    if (i) out.push_back(',');
    // The spec also escapes ' as \' after encoding; encoding has already
    // turned every ' into %27, so there is none left to escape.
    out.append(enc[i].first).append("='").append(enc[i].second).append("'");
  }
  out.append("*/");
  return out;
}

std::string TraceComment(const prism::tracing::SpanContext& span, size_t budget) {
  if (!span.IsValid()) return "";
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.emplace_back("traceparent", prism::tracing::w3c::FormatTraceparent(span));
  if (span.trace_state().empty()) return BuildSqlComment(std::move(pairs));
  std::string ts = span.trace_state().ToHeader();
  if (ts.empty() || ts.size() > kMaxCommentTraceStateBytes)
    return BuildSqlComment(std::move(pairs));
  auto without = pairs;
  pairs.emplace_back("tracestate", std::move(ts));
  std::string with = BuildSqlComment(std::move(pairs));
  return with.size() <= budget ? with : BuildSqlComment(std::move(without));
}

std::string AppendSqlComment(std::string_view sql, std::string_view comment) {
  if (comment.empty() || sql.find("--") != std::string_view::npos ||
      sql.find("/*") != std::string_view::npos) {
    return std::string(sql);
  }
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  size_t end = sql.size();
  while (end > 0 && is_space(sql[end - 1])) --end;
  bool semicolon = end > 0 && sql[end - 1] == ';';
  size_t body = semicolon ? end - 1 : end;
  while (body > 0 && is_space(sql[body - 1])) --body;
  std::string out;
  out.reserve(body + comment.size() + 2);
  out.append(sql.substr(0, body));
  if (body > 0) out.push_back(' ');
  out.append(comment);
  if (semicolon) out.push_back(';');
  return out;
}

}  // namespace prism::postgres
