// Export load programs.
//
//   prism_bench_export_load rate [spans_per_second=20000] [seconds=10]
//     Ends spans at a steady rate through a BatchSpanProcessor with the spec
//     defaults (OTEL_BSP_* honoured) and a counting exporter; prints the
//     number of export requests and the average batch size (the figure of
//     opentelemetry-cpp issue #4449).
//
//   prism_bench_export_load stall [spans=1000000]
//     Ends spans as fast as possible while the exporter is stalled; prints
//     the peak RSS and how many spans were dropped.

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/exporters/batch_span_processor.h"
#include "prism/tracing/tracer.h"

using namespace prism::tracing;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> spans{0};
  std::atomic<bool> stall{false};
  std::atomic<bool> shut_down{false};
};

class CountingExporter : public SpanExporter {
 public:
  explicit CountingExporter(Stats* stats) : stats_(stats) {}
  ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) override {
    while (stats_->stall.load() && !stats_->shut_down.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stats_->calls.fetch_add(1);
    stats_->spans.fetch_add(spans.size());
    return ExportResult::kSuccess;
  }
  bool Shutdown(Timeout) override {
    stats_->shut_down.store(true);
    return true;
  }

 private:
  Stats* stats_;
};

long PeakRssKb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int Rate(long rate, long seconds) {
  Stats stats;
  TracerProviderOptions o;
  o.processors.push_back(std::make_unique<BatchSpanProcessor>(
      std::make_unique<CountingExporter>(&stats), BatchSpanProcessorOptions::FromEnvironment()));
  auto provider = std::make_shared<TracerProvider>(std::move(o));
  Tracer tracer = provider->GetTracer("load");
  const auto start = Clock::now();
  const double cpu_start = CpuSeconds();
  const long total = rate * seconds;
  const long per_ms = std::max(1L, rate / 1000);
  long ended = 0;
  for (long ms = 0; ended < total; ++ms) {
    for (long i = 0; i < per_ms && ended < total; ++i, ++ended) {
      tracer.StartSpan("op", SpanKind::kServer).End();
    }
    std::this_thread::sleep_until(start + std::chrono::milliseconds(ms + 1));
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = CpuSeconds() - cpu_start;
  const uint64_t calls_before_shutdown = stats.calls.load();
  provider->Shutdown(std::chrono::seconds(10));
  std::printf("rate: %ld spans/s for %.1f s: %ld spans ended\n", rate, elapsed, ended);
  std::printf("export requests: %llu (%llu before shutdown), spans exported: %llu\n",
              static_cast<unsigned long long>(stats.calls.load()),
              static_cast<unsigned long long>(calls_before_shutdown),
              static_cast<unsigned long long>(stats.spans.load()));
  std::printf("average batch size: %.1f spans\n",
              stats.calls ? static_cast<double>(stats.spans) / stats.calls : 0.0);
  std::printf("process CPU: %.3f cores (span creation + batching, noop export)\n", cpu / elapsed);
  std::printf("%s\n", Diagnostics().ToString().c_str());
  return 0;
}

int Stall(long spans) {
  Stats stats;
  stats.stall = true;
  TracerProviderOptions o;
  o.processors.push_back(std::make_unique<BatchSpanProcessor>(
      std::make_unique<CountingExporter>(&stats), BatchSpanProcessorOptions::FromEnvironment()));
  auto provider = std::make_shared<TracerProvider>(std::move(o));
  Tracer tracer = provider->GetTracer("load");
  const long rss_before = PeakRssKb();
  const auto start = Clock::now();
  for (long i = 0; i < spans; ++i) {
    Span s = tracer.StartSpan("op", SpanKind::kServer);
    s.SetAttribute("prism.request_id", "0f8fad5b-d9cb-469f-a165-70867728950e");
    s.SetAttribute("prism.namespace", "default");
    s.End();
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const long rss_peak = PeakRssKb();
  auto d = Diagnostics();
  std::printf("stall: %ld spans ended in %.2f s (%.0f ns/span) against a stalled exporter\n", spans,
              elapsed, elapsed * 1e9 / spans);
  std::printf("peak RSS: %ld kB before, %ld kB after (growth %ld kB)\n", rss_before, rss_peak,
              rss_peak - rss_before);
  std::printf("dropped: %llu\n", static_cast<unsigned long long>(d.spans_dropped));
  provider->Shutdown(std::chrono::seconds(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "rate";
  if (mode == "rate") {
    return Rate(argc > 2 ? std::atol(argv[2]) : 20000, argc > 3 ? std::atol(argv[3]) : 10);
  }
  if (mode == "stall") return Stall(argc > 2 ? std::atol(argv[2]) : 1000000);
  std::fprintf(stderr, "usage: %s rate [spans_per_second] [seconds] | stall [spans]\n", argv[0]);
  return 2;
}
