#include "prism/tracing/exporters/file_exporter.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
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

// Creates missing parent directories (0700: they hold traces with request
// ids and namespaces) and opens the file 0600; returns the descriptor or -1
// and why. The modes hold whatever the process's umask.
int OpenForAppend(const std::string& path, std::string& error) {
  auto parent = std::filesystem::path(path).parent_path();
  std::string mkdir_error;
  std::string prefix;
  for (const auto& part : parent) {
    prefix = (std::filesystem::path(prefix) / part).string();
    if (part == "/" || prefix.empty()) continue;
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST && mkdir_error.empty()) {
      mkdir_error = " (creating " + prefix + ": " + std::strerror(errno) + ")";
    }
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) error = std::string("open: ") + std::strerror(errno) + mkdir_error;
  return fd;
}

class FileExporter : public SpanExporter {
 public:
  FileExporter(std::string path, uint64_t max_bytes, size_t max_line_bytes)
      : path_(std::move(path)),
        rotated_path_(path_ + ".1"),
        max_bytes_(max_bytes),
        max_line_bytes_(max_line_bytes) {}
  ~FileExporter() override { Close(); }

  ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) override {
    if (spans.empty()) return ExportResult::kSuccess;
    std::lock_guard lock(mutex_);
    if (shut_down_) return ExportResult::kFailure;
    std::string error;
    size_t dropped = 0;
    bool ok = WriteBounded(spans, error, dropped);
    if (dropped) {
      internal::Log(internal::LogLevel::kWarn,
                    "trace file exporter (" + path_ + "): dropped " + std::to_string(dropped) +
                        " span(s), each alone longer than the line bound of " +
                        std::to_string(max_line_bytes_) + " bytes");
    }
    if (!ok) {
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
  // Writes `spans` as one line, or as several when one would pass the line
  // bound (halving: a normal batch is encoded once).
  bool WriteBounded(std::span<const std::unique_ptr<SpanData>> spans, std::string& error,
                    size_t& dropped) {
    line_.clear();
    otlp::EncodeJson(spans, line_);
    line_.push_back('\n');
    if (line_.size() > max_line_bytes_) {
      if (spans.size() == 1) {
        ++dropped;
        return true;
      }
      const size_t half = spans.size() / 2;
      return WriteBounded(spans.first(half), error, dropped) &&
             WriteBounded(spans.subspan(half), error, dropped);
    }
    return Open(error) && WriteLine(error);
  }

  bool Open(std::string& error) {
    if (fd_ >= 0) return true;
    fd_ = OpenForAppend(path_, error);
    return fd_ >= 0;
  }

  bool Lock(std::string& error) {
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        error = std::string("flock: ") + std::strerror(errno);
        return false;
      }
    }
    return true;
  }

  // Locks the file that `path_` names now, rotating it first when the line
  // would take it past the cap. Only the holder of the lock on the current
  // file rotates it, so a writer that holds that lock and finds its
  // descriptor still named by `path_` may write.
  bool LockCurrentFile(std::string& error) {
    for (int attempt = 0;; ++attempt) {
      if (!Lock(error)) return false;
      if (max_bytes_ == 0 || attempt == 16) return true;  // 16: give up following, write
      struct stat open_file, named_file;
      if (::fstat(fd_, &open_file) != 0) return true;
      const bool current = ::stat(path_.c_str(), &named_file) == 0 &&
                           named_file.st_ino == open_file.st_ino &&
                           named_file.st_dev == open_file.st_dev;
      if (current) {
        const auto size = static_cast<uint64_t>(open_file.st_size);
        if (size == 0 || size + line_.size() <= max_bytes_) return true;
        // Unlink the older file first: renaming over an existing file makes
        // ext4 (auto_da_alloc) write the renamed file out at once, which
        // tripled the cost of a rotation (bench/export_bench.cc).
        ::unlink(rotated_path_.c_str());
        if (::rename(path_.c_str(), rotated_path_.c_str()) != 0) {
          // Keep the line rather than the cap.
          internal::Log(internal::LogLevel::kWarn, "trace file exporter (" + path_ +
                                                       "): cannot rotate: " + std::strerror(errno));
          return true;
        }
      }
      Close();  // releases the lock on the old file
      if (!Open(error)) return false;
    }
  }

  // One write() per line on an O_APPEND descriptor, under an exclusive flock
  // so that writers in other processes (or a short write's remainder) never
  // interleave with this line.
  bool WriteLine(std::string& error) {
    if (!LockCurrentFile(error)) return false;
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
  const std::string rotated_path_;
  const uint64_t max_bytes_;  // 0: no cap
  const size_t max_line_bytes_;
  int fd_ = -1;
  bool shut_down_ = false;
  std::string line_;
};

}  // namespace

std::string DefaultDataDir() { return env::Get("PRISM_DATA_DIR").value_or("./.prism"); }

std::string ResolveTraceFilePath(std::string_view configured, std::string_view data_dir) {
  if (auto p = env::Get("PRISM_TRACE_FILE")) return *p;
  if (!configured.empty()) return std::string(configured);
  std::string dir = data_dir.empty() ? DefaultDataDir() : std::string(data_dir);
  return dir + "/traces.jsonl";
}

std::string FileExporterOptions::DefaultPath() { return ResolveTraceFilePath(); }

std::unique_ptr<SpanExporter> MakeFileExporter(FileExporterOptions options) {
  std::string path = options.path.empty() ? FileExporterOptions::DefaultPath() : options.path;
  uint64_t max_bytes = kDefaultTraceFileMaxMb << 20;
  if (options.max_bytes) {
    max_bytes = *options.max_bytes;
  } else if (auto mb = env::GetInt("PRISM_TRACE_FILE_MAX_MB", options.environment)) {
    if (*mb >= 0 && *mb <= (1ll << 40)) {
      max_bytes = static_cast<uint64_t>(*mb) << 20;
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "PRISM_TRACE_FILE_MAX_MB must be a number of MiB >= 0; ignored");
    }
  }
  return std::make_unique<FileExporter>(std::move(path), max_bytes, options.max_line_bytes);
}

std::string TraceFileWriteError(const std::string& path) {
  std::string error;
  int fd = OpenForAppend(path, error);
  if (fd >= 0) ::close(fd);
  return error;
}

}  // namespace prism::tracing
