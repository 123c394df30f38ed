#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

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
    auto exporter = MakeFileExporter({path});
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
  testing::ScopedEnv e("PRISM_TRACE_FILE", "/tmp/x/y.jsonl");
  EXPECT_EQ(FileExporterOptions::DefaultPath(), "/tmp/x/y.jsonl");
  testing::ScopedEnv u("PRISM_TRACE_FILE", nullptr);
  EXPECT_EQ(FileExporterOptions::DefaultPath(), "./.prism/traces.jsonl");
}

// Several processes append large lines to one file: every line stays whole.
TEST(FileExporterTest, ConcurrentProcessesDoNotInterleave) {
  std::string path = TempPath("shared.jsonl");
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::filesystem::remove(path);
  constexpr int kProcs = 4, kLines = 20;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto exporter = MakeFileExporter({path});
      std::vector<std::unique_ptr<SpanData>> batch;
      for (int i = 0; i < 300; ++i) {
        auto s = MakeSampledSpanData("p" + std::to_string(p));
        s->attributes.push_back({"pad", std::string(200, static_cast<char>('a' + p))});
        batch.push_back(std::move(s));
      }
      int rc = 0;
      for (int i = 0; i < kLines; ++i) {
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
  auto lines = ReadLines(path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kProcs * kLines));
  for (const auto& line : lines) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "interleaved line";
    EXPECT_EQ(j["resourceSpans"][0]["scopeSpans"][0]["spans"].size(), 300u);
  }
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
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
