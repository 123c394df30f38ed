#include "export_common.h"

#include <zlib.h>

#include <algorithm>
#include <random>

#include "prism/tracing/diagnostics.h"

namespace prism::tracing::otlp_internal {

double Jitter(double lo, double hi) {
  thread_local std::minstd_rand rng(std::random_device{}());
  std::uniform_real_distribution<double> dist(lo, hi);
  return dist(rng);
}

bool Gzip(const std::string& in, std::string& out) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return false;
  }
  out.resize(deflateBound(&zs, in.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END;
}

void Account(const char* exporter, size_t n, const AttemptResult& result) {
  auto& c = internal::GlobalCounters();
  if (result.kind == AttemptResult::kOk) {
    auto rejected = static_cast<uint64_t>(
        std::clamp<int64_t>(result.rejected_spans, 0, static_cast<int64_t>(n)));
    if (rejected > 0) c.spans_failed.fetch_add(rejected, std::memory_order_relaxed);
    if (rejected > 0 || !result.partial_message.empty()) {
      internal::Log(internal::LogLevel::kWarn,
                    std::string(exporter) + ": partial success: " + std::to_string(rejected) +
                        " of " + std::to_string(n) + " spans rejected: " + result.partial_message);
    }
    return;
  }
  internal::Log(internal::LogLevel::kError, std::string(exporter) + ": export of " +
                                                std::to_string(n) +
                                                " spans failed: " + result.error);
}

}  // namespace prism::tracing::otlp_internal
