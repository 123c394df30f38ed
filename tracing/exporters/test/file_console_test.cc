#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "exporters_test_util.h"
#include "prism/tracing/exporters/console_exporter.h"
#include "prism/tracing/exporters/file_exporter.h"

namespace prism::tracing {
namespace {

using testing::MakeSampledSpanData;

std::string TempPath(const std::string& name) {
  auto dir =
      std::filesystem::temp_directory_path() / ("prism-exporters-" + std::to_string(getpid()));
  return (dir / name).string();
}

FileExporterOptions Options(const std::string& path,
                            std::optional<uint64_t> max_bytes = std::nullopt) {
  FileExporterOptions o;
  o.path = path;
  o.max_bytes = max_bytes;
  return o;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(FileExporterTest, AppendsOneRequestPerLineAndCreatesDirectories) {
  std::string path = TempPath("sub/dir/traces.jsonl");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  for (int round = 0; round < 2; ++round) {  // a second exporter appends
    auto exporter = MakeFileExporter(Options(path));
    std::vector<std::unique_ptr<SpanData>> batch;
    batch.push_back(MakeSampledSpanData("a"));
    batch.push_back(MakeSampledSpanData("b"));
    EXPECT_EQ(exporter->Export(batch), ExportResult::kSuccess);
    EXPECT_TRUE(exporter->Shutdown(std::chrono::seconds(1)));
    EXPECT_EQ(exporter->Export(batch), ExportResult::kFailure);
  }
  auto lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& line : lines) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["resourceSpans"][0]["scopeSpans"][0]["spans"].size(), 2u);
  }
}

TEST(FileExporterTest, PathFromEnvironment) {
  testing::ScopedEnv d("PRISM_DATA_DIR", nullptr);
  testing::ScopedEnv e("PRISM_TRACE_FILE", "/tmp/x/y.jsonl");
  EXPECT_EQ(FileExporterOptions::DefaultPath(), "/tmp/x/y.jsonl");
  testing::ScopedEnv u("PRISM_TRACE_FILE", nullptr);
  EXPECT_EQ(FileExporterOptions::DefaultPath(), "./.prism/traces.jsonl");
  testing::ScopedEnv dd("PRISM_DATA_DIR", "/var/lib/prism");
  EXPECT_EQ(FileExporterOptions::DefaultPath(), "/var/lib/prism/traces.jsonl");
}

// The one trace-file path rule (ResolveTraceFilePath), every step of it.
TEST(FileExporterTest, TraceFilePathRule) {
  struct Case {
    const char* trace_file_env;  // nullptr: unset
    const char* data_dir_env;
    const char* configured;
    const char* data_dir;
    std::string want;
    const char* rule;
  } cases[] = {
      {nullptr, nullptr, "", "", "./.prism/traces.jsonl", "nothing set"},
      {"", "", "", "", "./.prism/traces.jsonl", "empty variables are unset"},
      {nullptr, "/srv/p", "", "", "/srv/p/traces.jsonl", "$PRISM_DATA_DIR"},
      {nullptr, "/srv/p", "", "/d", "/d/traces.jsonl", "data_dir beats $PRISM_DATA_DIR"},
      {nullptr, nullptr, "", "rel", "rel/traces.jsonl", "relative data_dir kept"},
      {nullptr, "/srv/p", "/c/t.jsonl", "/d", "/c/t.jsonl", "configured beats the data dir"},
      {"/e/t.jsonl", "/srv/p", "/c/t.jsonl", "/d", "/e/t.jsonl", "$PRISM_TRACE_FILE beats all"},
      {"/e/t.jsonl", nullptr, "", "", "/e/t.jsonl", "$PRISM_TRACE_FILE alone"},
  };
  for (const auto& c : cases) {
    testing::ScopedEnv t("PRISM_TRACE_FILE", c.trace_file_env);
    testing::ScopedEnv d("PRISM_DATA_DIR", c.data_dir_env);
    EXPECT_EQ(ResolveTraceFilePath(c.configured, c.data_dir), c.want) << c.rule;
  }
  testing::ScopedEnv t("PRISM_TRACE_FILE", nullptr);
  testing::ScopedEnv d("PRISM_DATA_DIR", "/srv/p");
  EXPECT_EQ(DefaultDataDir(), "/srv/p");
}

// Forks `procs` writers; each exports `lines` lines of `spans` spans (with a
// 200-byte attribute) to one file, then all are waited for.
void ForkWriters(const FileExporterOptions& options, int procs, int lines, int spans) {
  std::vector<pid_t> pids;
  for (int p = 0; p < procs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto exporter = MakeFileExporter(options);
      std::vector<std::unique_ptr<SpanData>> batch;
      for (int i = 0; i < spans; ++i) {
        auto s = MakeSampledSpanData("p" + std::to_string(p));
        s->attributes.push_back({"pad", std::string(200, static_cast<char>('a' + p))});
        batch.push_back(std::move(s));
      }
      int rc = 0;
      for (int i = 0; i < lines; ++i) {
        if (exporter->Export(batch) != ExportResult::kSuccess) rc = 1;
      }
      _exit(rc);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

// Several processes append large lines to one file: every line stays whole.
TEST(FileExporterTest, ConcurrentProcessesDoNotInterleave) {
  std::string path = TempPath("shared.jsonl");
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::filesystem::remove(path);
  constexpr int kProcs = 4, kLines = 20;
  ForkWriters(Options(path), kProcs, kLines, 300);
  auto lines = ReadLines(path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kProcs * kLines));
  for (const auto& line : lines) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "interleaved line";
    EXPECT_EQ(j["resourceSpans"][0]["scopeSpans"][0]["spans"].size(), 300u);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// The span name of a one-span line.
std::string SpanName(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return "<not json>";
  return j["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"];
}

ExportResult ExportOne(SpanExporter& e, const std::string& name) {
  std::vector<std::unique_ptr<SpanData>> batch;
  batch.push_back(MakeSampledSpanData(name));
  return e.Export(batch);
}

// At the cap the file becomes PATH.1 (replacing the older one) and PATH
// starts again: the two hold the most recent lines, in order, none missing.
TEST(FileExporterTest, RotatesAtTheCapKeepingOnePredecessor) {
  std::string path = TempPath("rotate/traces.jsonl");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  constexpr uint64_t kCap = 4096;
  auto exporter = MakeFileExporter(Options(path, kCap));
  for (int i = 0; i < 60; ++i)
    ASSERT_EQ(ExportOne(*exporter, "s" + std::to_string(i)), ExportResult::kSuccess);
  EXPECT_LE(std::filesystem::file_size(path), kCap);
  EXPECT_LE(std::filesystem::file_size(path + ".1"), kCap);
  std::vector<std::string> lines = ReadLines(path + ".1");
  for (auto& l : ReadLines(path)) lines.push_back(l);
  ASSERT_GT(lines.size(), 4u);
  ASSERT_LT(lines.size(), 60u);  // older lines were dropped with older files
  const int first = 60 - static_cast<int>(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(SpanName(lines[i]), "s" + std::to_string(first + static_cast<int>(i)));
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// A writer whose open file was rotated away by another writer (another
// process, here another descriptor) writes its next line into the new file,
// not into PATH.1 behind the reader's back.
TEST(FileExporterTest, WritersFollowARotationByAnother) {
  std::string path = TempPath("follow/traces.jsonl");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  constexpr uint64_t kCap = 2048;
  auto a = MakeFileExporter(Options(path, kCap));
  auto b = MakeFileExporter(Options(path, kCap));
  ASSERT_EQ(ExportOne(*b, "b0"), ExportResult::kSuccess);  // b opens the first file
  int i = 0;
  while (!std::filesystem::exists(path + ".1") && i < 100) {
    ASSERT_EQ(ExportOne(*a, "a" + std::to_string(i++)), ExportResult::kSuccess);
  }
  ASSERT_TRUE(std::filesystem::exists(path + ".1"));
  ASSERT_EQ(ExportOne(*b, "b1"), ExportResult::kSuccess);
  auto current = ReadLines(path);
  ASSERT_FALSE(current.empty());
  EXPECT_EQ(SpanName(current.back()), "b1");
  for (const auto& l : ReadLines(path + ".1")) EXPECT_NE(SpanName(l), "b1");
  // A file removed by hand comes back at the next export.
  std::filesystem::remove(path);
  ASSERT_EQ(ExportOne(*b, "b2"), ExportResult::kSuccess);
  ASSERT_EQ(ReadLines(path).size(), 1u);
  EXPECT_EQ(SpanName(ReadLines(path)[0]), "b2");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// Processes appending large lines through many rotations: every line whole,
// both files within the cap (plus at most one line).
TEST(FileExporterTest, ConcurrentProcessesRotateWithoutInterleaving) {
  std::string path = TempPath("rotate-procs/traces.jsonl");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  constexpr uint64_t kCap = 64 * 1024;
  ForkWriters(Options(path, kCap), /*procs=*/4, /*lines=*/30, /*spans=*/30);
  size_t line_bytes = 0;
  for (const std::string& f : {path, path + ".1"}) {
    auto lines = ReadLines(f);
    ASSERT_FALSE(lines.empty()) << f;
    for (const auto& line : lines) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << "interleaved line in " << f;
      EXPECT_EQ(j["resourceSpans"][0]["scopeSpans"][0]["spans"].size(), 30u);
      line_bytes = std::max(line_bytes, line.size() + 1);
    }
    EXPECT_LE(std::filesystem::file_size(f), kCap + line_bytes) << f;
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// PRISM_TRACE_FILE_MAX_MB sets the cap; 0 turns it off.
TEST(FileExporterTest, CapFromEnvironment) {
  std::string path = TempPath("cap-env/traces.jsonl");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  {
    testing::ScopedEnv e("PRISM_TRACE_FILE_MAX_MB", "0");
    auto exporter = MakeFileExporter(Options(path));
    for (int i = 0; i < 20; ++i) ASSERT_EQ(ExportOne(*exporter, "s"), ExportResult::kSuccess);
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".1"));
  EXPECT_EQ(ReadLines(path).size(), 20u);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// The line bound, at its boundary: a one-span line of exactly the bound is
// written, with a bound one byte smaller the span is dropped (and nothing is
// written); a batch over the bound is split into lines that each fit, with
// every span kept.
TEST(FileExporterTest, NoLineIsLongerThanTheBound) {
  std::string path = TempPath("line-bound/traces.jsonl");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  std::vector<std::unique_ptr<SpanData>> one;
  one.push_back(MakeSampledSpanData(std::string(1000, 'n')));
  size_t exact = 0;
  {
    auto e = MakeFileExporter(Options(path, 0));
    ASSERT_EQ(e->Export(one), ExportResult::kSuccess);
    exact = std::filesystem::file_size(path);  // the line, newline included
  }
  for (size_t bound : {exact, exact - 1}) {
    std::filesystem::remove(path);
    FileExporterOptions o = Options(path, 0);
    o.max_line_bytes = bound;
    auto e = MakeFileExporter(o);
    ASSERT_EQ(e->Export(one), ExportResult::kSuccess);  // a dropped span is not a failure
    e->Shutdown(std::chrono::seconds(1));
    EXPECT_EQ(std::filesystem::exists(path) ? ReadLines(path).size() : 0u, bound == exact ? 1u : 0u)
        << "bound " << bound << ", line " << exact;
  }

  std::filesystem::remove(path);
  FileExporterOptions o = Options(path, 0);
  o.max_line_bytes = 3 * exact;  // three one-span lines' worth
  auto e = MakeFileExporter(o);
  std::vector<std::unique_ptr<SpanData>> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(MakeSampledSpanData(std::string(1000, 'a' + i)));
  ASSERT_EQ(e->Export(batch), ExportResult::kSuccess);
  e->Shutdown(std::chrono::seconds(1));
  auto lines = ReadLines(path);
  EXPECT_GT(lines.size(), 3u);
  std::set<std::string> names;
  for (const auto& line : lines) {
    EXPECT_LE(line.size() + 1, o.max_line_bytes);
    auto j = nlohmann::json::parse(line);
    for (const auto& span : j["resourceSpans"][0]["scopeSpans"][0]["spans"]) {
      names.insert(span["name"].get<std::string>());
    }
  }
  EXPECT_EQ(names.size(), 10u);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// The file and the directories the exporter creates are private, whatever
// the umask lets through.
TEST(FileExporterTest, CreatesThePrivateFileAndDirectories) {
  std::string base = TempPath("modes");
  std::filesystem::remove_all(base);
  std::string path = base + "/a/b/traces.jsonl";
  mode_t old = umask(0);
  {
    auto e = MakeFileExporter(Options(path));
    EXPECT_EQ(ExportOne(*e, "s"), ExportResult::kSuccess);
  }
  umask(old);
  auto mode = [](const std::string& p) {
    return static_cast<int>(std::filesystem::status(p).permissions());
  };
  EXPECT_EQ(mode(path), 0600);
  EXPECT_EQ(mode(base + "/a/b"), 0700);
  EXPECT_EQ(mode(base + "/a"), 0700);
  std::filesystem::remove_all(base);
}

TEST(ConsoleExporterTest, OneReadableLinePerSpan) {
  auto s = MakeSampledSpanData("GET /users");
  s->kind = SpanKind::kServer;
  s->status = StatusCode::kError;
  s->status_message = "boom";
  s->attributes.push_back({"http.status_code", int64_t{500}});
  s->events.push_back({"exception", s->start_unix_nano + 500000, {}, 0});
  std::string line = FormatSpanForConsole(*s);
  EXPECT_NE(line.find("span \"GET /users\" SERVER 0.001ms"), std::string::npos) << line;
  EXPECT_NE(line.find("trace=" + s->context.trace_id().ToHex()), std::string::npos);
  EXPECT_NE(line.find("status=ERROR \"boom\""), std::string::npos);
  EXPECT_NE(line.find("http.status_code=500"), std::string::npos);
  EXPECT_NE(line.find("exception@+0.500ms"), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);

  std::FILE* f = std::tmpfile();
  auto exporter = MakeConsoleExporter(f);
  std::vector<std::unique_ptr<SpanData>> batch;
  batch.push_back(std::move(s));
  batch.push_back(MakeSampledSpanData("x"));
  EXPECT_EQ(exporter->Export(batch), ExportResult::kSuccess);
  EXPECT_EQ(std::ftell(f) > 0, true);
  std::rewind(f);
  int newlines = 0;
  for (int c; (c = std::fgetc(f)) != EOF;) newlines += c == '\n';
  EXPECT_EQ(newlines, 2);
  std::fclose(f);
}

}  // namespace
}  // namespace prism::tracing
