// The sqlcommenter comment builder: format (keys sorted, values encoded and
// quoted, placement before a trailing ';') and hostile input that must stay
// inside the comment's quoted values.
#include "sqlcommenter.h"

#include <gtest/gtest.h>

#include "prism/tracing/propagation.h"
#include "prism/tracing/trace_state.h"

namespace prism::postgres {
namespace {

using prism::tracing::SpanContext;

// What a reader of the comment must never find: a way out of the comment
// or of a quoted value, a line break, a NUL, a byte outside printable ASCII.
void ExpectContained(const std::string& comment) {
  ASSERT_GE(comment.size(), 4u);
  EXPECT_EQ(comment.substr(0, 2), "/*");
  EXPECT_EQ(comment.substr(comment.size() - 2), "*/");
  std::string inner = comment.substr(2, comment.size() - 4);
  EXPECT_EQ(inner.find("*/"), std::string::npos) << comment;
  EXPECT_EQ(inner.find("/*"), std::string::npos) << comment;
  EXPECT_EQ(inner.find('\\'), std::string::npos) << comment;
  for (unsigned char c : inner) {
    EXPECT_TRUE(c >= 0x21 && c <= 0x7e) << "byte " << int(c) << " in " << comment;
  }
  // Quotes only around values: k='v',k='v'
  size_t pos = 0;
  while (pos < inner.size()) {
    size_t eq = inner.find("='", pos);
    ASSERT_NE(eq, std::string::npos) << comment;
    EXPECT_EQ(inner.substr(pos, eq - pos).find('\''), std::string::npos) << comment;
    size_t close = inner.find('\'', eq + 2);
    ASSERT_NE(close, std::string::npos) << comment;
    pos = close + 1;
    if (pos < inner.size()) {
      EXPECT_EQ(inner[pos], ',') << comment;
      ++pos;
    }
  }
}

// The sqlcommenter parsing rule: split on ',', unquote, URL-decode.
std::vector<std::pair<std::string, std::string>> Parse(const std::string& comment) {
  auto decode = [](const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  };
  std::vector<std::pair<std::string, std::string>> out;
  std::string inner = comment.substr(2, comment.size() - 4);
  size_t pos = 0;
  while (pos < inner.size()) {
    size_t comma = inner.find(',', pos);
    std::string pair =
        inner.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t eq = pair.find('=');
    std::string v = pair.substr(eq + 1);
    out.emplace_back(decode(pair.substr(0, eq)), decode(v.substr(1, v.size() - 2)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

TEST(SqlComment, SpecExample) {
  // google/sqlcommenter's own example.
  std::string c = BuildSqlComment({{"tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
                                   {"traceparent",
                                    "00-5bd66ef5095369c7b0d1f8f4bd33716a-"
                                    "c532cb4098ac3dd2-01"}});
  EXPECT_EQ(c,
            "/*traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01',"
            "tracestate='congo%3Dt61rcWkgMzE%2Crojo%3D00f067aa0ba902b7'*/");
  EXPECT_EQ(SqlCommentEncode("/param first"), "%2Fparam%20first");
  EXPECT_EQ(BuildSqlComment({}), "");
}

TEST(SqlComment, KeysSortedAfterEncoding) {
  std::string c = BuildSqlComment({{"route", "/x"}, {"action", "a"}, {"framework", "f"}});
  EXPECT_EQ(c, "/*action='a',framework='f',route='%2Fx'*/");
}

TEST(SqlComment, TraceCommentHasTheSpansOwnTraceparent) {
  auto ctx = prism::tracing::w3c::ParseTraceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7,congo=t61");
  ASSERT_TRUE(ctx);
  EXPECT_EQ(TraceComment(*ctx),
            "/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',"
            "tracestate='rojo%3D00f067aa0ba902b7%2Ccongo%3Dt61'*/");
  auto plain = prism::tracing::w3c::ParseTraceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  EXPECT_EQ(TraceComment(*plain),
            "/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'*/");
  EXPECT_EQ(TraceComment(SpanContext()), "");
}

TEST(SqlComment, LongTracestateIsLeftOut) {
  std::string ts;
  for (int i = 0; i < 30; ++i)
    ts += (i ? "," : "") + ("k" + std::to_string(i)) + "=" + std::string(20, 'v');
  auto ctx = prism::tracing::w3c::ParseTraceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ts);
  ASSERT_TRUE(ctx);
  ASSERT_GT(ctx->trace_state().ToHeader().size(), kMaxCommentTraceStateBytes);
  EXPECT_EQ(TraceComment(*ctx),
            "/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/");
}

// A comment that would not fit in pg_stat_activity's 1024 bytes with its
// statement keeps the traceparent and drops the tracestate, so what
// PostgreSQL shows is a whole comment, never a cut one.
TEST(SqlComment, TracestateLeftOutWhenTheCommentWouldBeCut) {
  auto ctx = prism::tracing::w3c::ParseTraceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=" + std::string(200, '*'));
  ASSERT_TRUE(ctx);
  std::string full = TraceComment(*ctx);
  EXPECT_NE(full.find("tracestate='a%3D%2A%2A"), std::string::npos);
  EXPECT_GT(full.size(), 600u);  // 200 '*' encode to 600 bytes
  EXPECT_EQ(TraceComment(*ctx, full.size()), full);
  EXPECT_EQ(TraceComment(*ctx, full.size() - 1),
            "/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/");
  // Even with no room the traceparent stays: it is what the comment is for.
  EXPECT_EQ(TraceComment(*ctx, 0),
            "/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/");
}

TEST(SqlComment, HostileInputStaysInsideTheValues) {
  const std::vector<std::string> hostile = {
      "*/ DROP TABLE kv; /*",
      "'; DELETE FROM kv; --",
      "a\nb\r\nc",
      std::string("nul\0byte", 8),
      "caf\xc3\xa9 \xe2\x9c\x93 \xff\xfe",
      "\\' backslash quote",
      "x*/",
      "/*",
      "--",
      "%27 already encoded",
      "$1 $$ dollar",
  };
  for (const auto& h : hostile) {
    // As value, as key, as both, next to a real traceparent.
    for (const auto& pairs : std::vector<std::vector<std::pair<std::string, std::string>>>{
             {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
              {"tracestate", h}},
             {{h, "v"}},
             {{h, h}, {"baggage", h}}}) {
      std::string c = BuildSqlComment(pairs);
      SCOPED_TRACE(c);
      ExpectContained(c);
      // ... and it decodes back to exactly what went in.
      auto back = Parse(c);
      auto sorted = pairs;
      ASSERT_EQ(back.size(), sorted.size());
      for (const auto& p : sorted) {
        EXPECT_NE(std::find(back.begin(), back.end(), p), back.end());
      }
      // Appended to SQL, the statement before it is unchanged and nothing
      // follows the comment but the ';'.
      std::string sql = AppendSqlComment("SELECT 1;", c);
      EXPECT_EQ(sql, "SELECT 1 " + c + ";");
    }
  }
}

TEST(SqlComment, HostileTracestateFromTheWire) {
  // What a caller can actually send: the propagator only accepts valid
  // tracestate members; the ones it keeps still go through the encoder.
  auto ctx = prism::tracing::w3c::ParseTraceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "a=*/select/*,b=x'y,c=--z,d=%2A%2F");
  ASSERT_TRUE(ctx);
  std::string c = TraceComment(*ctx);
  ExpectContained(c);
  auto back = Parse(c);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].first, "tracestate");
  EXPECT_EQ(back[1].second, ctx->trace_state().ToHeader());
}

TEST(SqlComment, Placement) {
  const std::string c = "/*k='v'*/";
  EXPECT_EQ(AppendSqlComment("SELECT 1", c), "SELECT 1 /*k='v'*/");
  EXPECT_EQ(AppendSqlComment("SELECT 1;", c), "SELECT 1 /*k='v'*/;");
  EXPECT_EQ(AppendSqlComment("SELECT 1 ;  \n", c), "SELECT 1 /*k='v'*/;");
  EXPECT_EQ(AppendSqlComment("SELECT 1  ", c), "SELECT 1 /*k='v'*/");
  // SQL with a comment of its own is not touched (the spec's rule).
  EXPECT_EQ(AppendSqlComment("SELECT 1 -- x", c), "SELECT 1 -- x");
  EXPECT_EQ(AppendSqlComment("SELECT /* x */ 1", c), "SELECT /* x */ 1");
  EXPECT_EQ(AppendSqlComment("SELECT 1", ""), "SELECT 1");
}

}  // namespace
}  // namespace prism::postgres
