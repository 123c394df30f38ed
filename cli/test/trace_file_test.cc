#include "trace_file.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace prism::cli {
namespace {

std::string Line(const std::string& service, const std::string& spans) {
  return R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":")" +
         service + R"("}}]},"scopeSpans":[{"scope":{"name":"x"},"spans":[)" + spans + "]}]}]}";
}

std::string Span(const std::string& trace, const std::string& id, const std::string& parent,
                 const std::string& name, int kind, uint64_t start_ms, uint64_t end_ms,
                 int status = 0, const std::string& message = "") {
  std::string s =
      R"({"traceId":")" + trace + R"(","spanId":")" + id + R"(","parentSpanId":")" + parent +
      R"(","name":")" + name + R"(","kind":)" + std::to_string(kind) + R"(,"startTimeUnixNano":")" +
      std::to_string(1700000000000000000ULL + start_ms * 1000000) + R"(","endTimeUnixNano":")" +
      std::to_string(1700000000000000000ULL + end_ms * 1000000) +
      R"(","attributes":[{"key":"prism.namespace","value":{"stringValue":"default"}},{"key":"n","value":{"intValue":"7"}}],"status":{)";
  if (status) s += R"("code":)" + std::to_string(status);
  if (!message.empty()) s += R"(,"message":")" + message + R"(")";
  return s + "}}";
}

const std::string kT1 = "0af7651916cd43dd8448eb211c80319c";
const std::string kT2 = "0af7651916cd43dd8448eb211c80319d";

TraceFile Sample() {
  TraceFile f;
  f.AddLine(Line(
      "prism-proxy",
      Span(kT1, "1111111111111111", "", "prism.v1.KeyValue/Get", 2, 0, 100) + "," +
          Span(kT1, "2222222222222222", "1111111111111111", "prism.auth.verify", 1, 0, 10) + "," +
          Span(kT1, "3333333333333333", "1111111111111111", "prism.v1.KeyValue/Get", 3, 20, 100, 2,
               "boom")));
  f.AddLine(Line("prism-plugin-sqlite", Span(kT1, "4444444444444444", "3333333333333333",
                                             "prism.v1.KeyValue/Get", 2, 30, 90)));
  f.AddLine("not json");
  f.AddLine(Line("other", Span(kT2, "5555555555555555", "", "x", 1, 200, 201)));
  return f;
}

TEST(TraceFile, ListsTraces) {
  TraceFile f = Sample();
  EXPECT_EQ(f.skipped_lines(), 1u);
  auto list = f.Summaries();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].trace_id, kT1);  // newest first
  EXPECT_EQ(list[1].span_count, 4u);
  EXPECT_TRUE(list[1].error);
  EXPECT_EQ(list[1].root_name, "prism.v1.KeyValue/Get");
  EXPECT_EQ(list[1].end_ns - list[1].start_ns, 100000000u);
  std::ostringstream out;
  RenderList(list, 10, out);
  EXPECT_NE(out.str().find("✗ error"), std::string::npos);
  EXPECT_NE(out.str().find("100.00 ms"), std::string::npos);
}

// A trace split by a rotation (PATH.1 holds its first spans) is whole again.
TEST(TraceFile, LoadReadsTheRotatedFileToo) {
  const std::string path = ::testing::TempDir() + "/trace_file_test_rotated.jsonl";
  {
    std::ofstream older(path + ".1");
    older << Line("prism-proxy", Span(kT1, "1111111111111111", "", "root", 2, 0, 100)) << "\n";
    std::ofstream current(path);
    current << Line("prism-plugin-sqlite",
                    Span(kT1, "4444444444444444", "1111111111111111", "child", 2, 30, 90))
            << "\n";
  }
  auto f = TraceFile::Load(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const auto* spans = f->Spans(kT1);
  ASSERT_NE(spans, nullptr);
  EXPECT_EQ(spans->size(), 2u);
  // `show` skips the lines that do not mention its id.
  auto only_child = TraceFile::Load(path, "4444444444444444");
  ASSERT_TRUE(only_child.ok());
  ASSERT_NE(only_child->Spans(kT1), nullptr);
  EXPECT_EQ(only_child->Spans(kT1)->size(), 1u);
  std::remove((path + ".1").c_str());
  std::remove(path.c_str());
}

TEST(TraceFile, ResolvesPrefixes) {
  TraceFile f = Sample();
  EXPECT_EQ(*f.Resolve(kT1), kT1);
  EXPECT_EQ(*f.Resolve("0AF7651916CD43DD8448EB211C80319C"), kT1);
  EXPECT_EQ(f.Resolve("0af7").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(f.Resolve("ffff").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(f.Resolve("xyz").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*f.Resolve("0af7651916cd43dd8448eb211c80319d"), kT2);
}

TEST(TraceFile, DrawsTheWaterfall) {
  TraceFile f = Sample();
  std::ostringstream out;
  WaterfallOptions o;
  o.bar_width = 10;
  RenderWaterfall(kT1, *f.Spans(kT1), o, out);
  const std::string expected_rows =
      "SPAN                         SERVICE              DURATION   TIMELINE\n"
      "prism.v1.KeyValue/Get        prism-proxy          100.00 ms  |██████████|\n"
      "├─ prism.auth.verify         prism-proxy           10.00 ms  |█         |\n"
      "└─ prism.v1.KeyValue/Get     prism-proxy           80.00 ms  |  ████████|  ✗ boom\n"
      "   └─ prism.v1.KeyValue/Get  prism-plugin-sqlite   60.00 ms  |   ██████ |\n";
  std::string text = out.str();
  EXPECT_NE(text.find("4 spans, 2 services, 1 with errors"), std::string::npos) << text;
  EXPECT_NE(text.find(expected_rows), std::string::npos) << text;

  auto j = WaterfallJson(kT1, *f.Spans(kT1));
  ASSERT_EQ(j["spans"].size(), 4u);
  EXPECT_EQ(j["spans"][3]["depth"], 2);
  EXPECT_EQ(j["spans"][3]["service"], "prism-plugin-sqlite");
  EXPECT_EQ(j["spans"][2]["status"]["code"], "ERROR");
  EXPECT_EQ(j["spans"][0]["attributes"]["n"], 7);
  EXPECT_TRUE(j["error"].get<bool>());
}

TEST(TraceFile, GarbageNeverCrashes) {
  TraceFile f;
  const char* lines[] = {"{}",
                         "[]",
                         "{\"resourceSpans\":3}",
                         "{\"resourceSpans\":[1,{}]}",
                         "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":1}]}]}]}",
                         "\xff\xfe"};
  for (const char* l : lines) f.AddLine(l);
  EXPECT_TRUE(f.Summaries().empty());
}

TEST(TraceFile, EscapesWhatIsNotPrintable) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"plain text, ünïcode €", "plain text, ünïcode €"},
      {"\x1b[2J\x1b]0;owned\x07", "\\x1b[2J\\x1b]0;owned\\x07"},  // clear screen, title, BEL
      {"a\nb\rc\td", "a\\nb\\rc\\td"},
      {"del\x7f", "del\\x7f"},
      {"\xc2\x9b"
       "31m",
       "\\u{9b}31m"},  // C1 CSI
      {"\xe2\x80\xae"
       "evil",
       "\\u{202e}evil"},                   // right-to-left override
      {"bad \xff\xc3", "bad \\xff\\xc3"},  // invalid UTF-8
      {std::string("nul\0x", 5), "nul\\x00x"},
  };
  for (const auto& c : cases) EXPECT_EQ(EscapeNonPrintable(c.in), c.out) << c.in;
}

// What a client put in a span reaches the terminal escaped, in the
// waterfall with its attributes and in the list.
TEST(TraceFile, ViewerPrintsNoControlCharacters) {
  TraceFile f;
  f.AddLine(Line("svc\\u001b]0;title\\u0007", Span(kT1, "1111111111111111", "", "get\\u001b[2J", 2,
                                                   0, 10, 2, "forged\\nline\\r")));
  std::ostringstream out;
  WaterfallOptions o;
  o.attributes = true;
  RenderWaterfall(kT1, *f.Spans(kT1), o, out);
  RenderList(f.Summaries(), 10, out);
  std::string text = out.str();
  for (char c : text) {
    EXPECT_TRUE(c == '\n' || static_cast<unsigned char>(c) >= 0x20) << static_cast<int>(c);
  }
  EXPECT_NE(text.find("get\\x1b[2J"), std::string::npos) << text;
  EXPECT_NE(text.find("forged\\nline\\r"), std::string::npos) << text;
  EXPECT_NE(text.find("svc\\x1b]0;title\\x07"), std::string::npos) << text;
}

// A line nested deeper than kMaxJsonDepth is skipped unparsed (50,000
// arrays overflowed the stack while copying); the depth is counted outside
// strings only. Load says which line it skipped.
TEST(TraceFile, DeeplyNestedLinesAreSkipped) {
  std::string deep = std::string(50000, '[') + std::string(50000, ']');
  std::string value = R"({"key":"a","value":{"stringValue":")" + std::string(100, '[') + R"("}})";
  std::string span = Span(kT1, "1111111111111111", "", "x", 2, 0, 10);
  span.insert(span.find("\"attributes\":[") + 14, value + ",");
  std::string ok_line = Line("s", span);
  std::string bad_line = Line("s", Span(kT2, "2222222222222222", "", "y", 2, 0, 10));
  bad_line.insert(bad_line.find("\"attributes\":[") + 14,
                  R"({"key":"deep","value":{"arrayValue":{"values":)" + deep + "}}},");
  EXPECT_FALSE(NestedDeeperThan(ok_line, kMaxJsonDepth));
  EXPECT_TRUE(NestedDeeperThan(bad_line, kMaxJsonDepth));
  EXPECT_FALSE(NestedDeeperThan(std::string(kMaxJsonDepth, '['), kMaxJsonDepth));
  EXPECT_TRUE(NestedDeeperThan(std::string(kMaxJsonDepth + 1, '['), kMaxJsonDepth));

  std::string path = ::testing::TempDir() + "/deep.jsonl";
  {
    std::ofstream o(path);
    o << ok_line << "\n" << bad_line << "\n";
  }
  auto file = TraceFile::Load(path);
  ASSERT_TRUE(file.ok());
  EXPECT_NE(file->Spans(kT1), nullptr);
  EXPECT_EQ(file->Spans(kT2), nullptr);
  ASSERT_EQ(file->warnings().size(), 1u);
  EXPECT_EQ(file->warnings()[0], path + ":2: skipped: JSON nested deeper than 64 levels");
  std::remove(path.c_str());
}

// A parent chain 100,000 spans long is drawn without recursion, its tree
// lines cut at depth 32.
TEST(TraceFile, DeepParentChainsAreDrawn) {
  TraceFile f;
  char id[17], parent[17];
  std::string spans;
  for (int i = 0; i < 100000; ++i) {
    std::snprintf(id, sizeof id, "%016x", i + 1);
    std::snprintf(parent, sizeof parent, "%016x", i);
    if (!spans.empty()) spans += ",";
    spans += Span(kT1, id, i == 0 ? "" : parent, "s", 1, i, i + 1);
  }
  f.AddLine(Line("svc", spans));
  std::ostringstream out;
  RenderWaterfall(kT1, *f.Spans(kT1), WaterfallOptions{}, out);
  std::string text = out.str();
  EXPECT_NE(text.find("100000 spans"), std::string::npos);
  EXPECT_NE(text.find("… "), std::string::npos);
  EXPECT_LT(text.size(), 100000u * 300);
}

}  // namespace
}  // namespace prism::cli
