#include "prism/tracing/exporters/file_exporter.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"
#include "prism/tracing/exporters/otlp_encoder.h"

namespace prism::tracing {
namespace {

// Creates missing parent directories; returns the descriptor or -1 and why.
int OpenForAppend(const std::string& path, std::string& error) {
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = std::string("open: ") + std::strerror(errno);
    if (ec) error += " (creating " + parent.string() + ": " + ec.message() + ")";
  }
  return fd;
}

class FileExporter : public SpanExporter {
 public:
  explicit FileExporter(std::string path) : path_(std::move(path)) {}
  ~FileExporter() override { Close(); }

  ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) override {
    if (spans.empty()) return ExportResult::kSuccess;
    std::lock_guard lock(mutex_);
    if (shut_down_) return ExportResult::kFailure;
    line_.clear();
    otlp::EncodeJson(spans, line_);
    line_.push_back('\n');
    std::string error;
    if (!Open(error) || !WriteLine(error)) {
      internal::Log(internal::LogLevel::kError, "trace file exporter (" + path_ + "): " + error);
      return ExportResult::kFailure;
    }
    return ExportResult::kSuccess;
  }

  bool Shutdown(Timeout) override {
    std::lock_guard lock(mutex_);
    shut_down_ = true;
    Close();
    return true;
  }

 private:
  bool Open(std::string& error) {
    if (fd_ >= 0) return true;
    fd_ = OpenForAppend(path_, error);
    return fd_ >= 0;
  }

  // One write() per line on an O_APPEND descriptor, under an exclusive flock
  // so that writers in other processes (or a short write's remainder) never
  // interleave with this line.
  bool WriteLine(std::string& error) {
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        error = std::string("flock: ") + std::strerror(errno);
        return false;
      }
    }
    size_t off = 0;
    bool ok = true;
    while (off < line_.size()) {
      ssize_t n = ::write(fd_, line_.data() + off, line_.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        error = std::string("write: ") + std::strerror(errno);
        ok = false;
        break;
      }
      off += static_cast<size_t>(n);
    }
    ::flock(fd_, LOCK_UN);
    return ok;
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::mutex mutex_;
  const std::string path_;
  int fd_ = -1;
  bool shut_down_ = false;
  std::string line_;
};

}  // namespace

std::string FileExporterOptions::DefaultPath() {
  if (auto p = env::Get("PRISM_TRACE_FILE")) return *p;
  return kDefaultTraceFile;
}

std::unique_ptr<SpanExporter> MakeFileExporter(FileExporterOptions options) {
  std::string path = options.path.empty() ? FileExporterOptions::DefaultPath() : options.path;
  return std::make_unique<FileExporter>(std::move(path));
}

std::string TraceFileWriteError(const std::string& path) {
  std::string error;
  int fd = OpenForAppend(path, error);
  if (fd >= 0) ::close(fd);
  return error;
}

}  // namespace prism::tracing
