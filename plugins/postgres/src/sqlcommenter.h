#pragma once
// sqlcommenter (google/sqlcommenter spec): trace context carried into the
// database as a comment at the end of the statement, so PostgreSQL's own
// records of a statement (server log, pg_stat_activity, auto_explain) name
// the span that ran it:
//
//   SELECT value FROM kv WHERE ns = $1 AND key = $2 /*traceparent='00-4bf9...-00f0...-01'*/
//
// Keys and values are percent-encoded (every byte outside A-Z a-z 0-9 - . _ ~
// becomes %XX), values single-quoted, pairs sorted by key and joined by ','.
// After encoding no byte can end the comment (`*/`), open a string or a
// new line, or be a NUL: whatever a caller put in tracestate stays data.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "prism/tracing/span_context.h"

namespace prism::postgres {

// tracestate is left out of the comment when its header form is longer than
// this (the W3C minimum a vendor must propagate): the comment stays short
// and the traceparent, which sorts first, is what matters.
inline constexpr size_t kMaxCommentTraceStateBytes = 512;

// Percent-encodes every byte outside the RFC 3986 unreserved set.
std::string SqlCommentEncode(std::string_view s);

// "/*k1='v1',k2='v2'*/" with keys and values encoded and the pairs sorted by
// encoded key; "" when `pairs` is empty.
std::string BuildSqlComment(std::vector<std::pair<std::string, std::string>> pairs);

// PostgreSQL keeps the first track_activity_query_size bytes (1024 by
// default) of a statement in pg_stat_activity.query; a comment cut there
// has lost its end and reads as no comment at all.
inline constexpr size_t kPgActivityQueryBytes = 1024;

// The comment for a statement run in `span`: its traceparent (the statement
// span's own span id) and, when present and short enough, its tracestate.
// The tracestate is also left out when the comment would be longer than
// `budget` bytes (the traceparent is always kept). "" for an invalid context.
std::string TraceComment(const prism::tracing::SpanContext& span, size_t budget = SIZE_MAX);

// `sql` with `comment` appended: before a trailing ';' (and the whitespace
// around it), separated by one space. The sqlcommenter rule: SQL that
// already has a comment ("--" or "/*") is returned unchanged.
std::string AppendSqlComment(std::string_view sql, std::string_view comment);

}  // namespace prism::postgres
