// Fault tests: the OTLP/HTTP exporter and the batch processor against a local
// fake receiver (cpp-httplib) that fails in the ways receivers do.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <thread>

#include "exporters_test_util.h"
#include "prism/tracing/diagnostics.h"
#include "prism/tracing/exporters/batch_span_processor.h"
#include "prism/tracing/exporters/otlp_exporter.h"

namespace prism::tracing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::MakeSampledSpanData;

class FakeReceiver {
 public:
  using Handler = std::function<void(int attempt, const httplib::Request&, httplib::Response&)>;
  explicit FakeReceiver(Handler handler) : handler_(std::move(handler)) {
    server_.Post("/v1/traces", [this](const httplib::Request& req, httplib::Response& res) {
      int n = ++requests_;
      handler_(n, req, res);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeReceiver() {
    server_.stop();
    thread_.join();
  }
  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces";
  }
  int requests() const { return requests_.load(); }

 private:
  Handler handler_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

void Ok(httplib::Response& res) {
  res.status = 200;
  res.set_content("", "application/x-protobuf");
}

OtlpExporterOptions FastOptions(const std::string& endpoint) {
  OtlpExporterOptions o;
  o.endpoint = endpoint;
  o.timeout = 3s;
  o.retry.initial_backoff = 10ms;
  o.retry.max_backoff = 50ms;
  o.retry.max_attempts = 5;
  return o;
}

std::vector<std::unique_ptr<SpanData>> Batch(size_t n) {
  std::vector<std::unique_ptr<SpanData>> b;
  for (size_t i = 0; i < n; ++i) b.push_back(MakeSampledSpanData());
  return b;
}

// A port nothing listens on (bound to learn a free number, then closed).
int UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(FaultTest, RetryableStatusThenSuccess) {
  FakeReceiver receiver([](int attempt, const httplib::Request&, httplib::Response& res) {
    if (attempt == 1) {
      res.status = 503;
    } else {
      Ok(res);
    }
  });
  auto exporter = MakeOtlpHttpExporter(FastOptions(receiver.endpoint()));
  EXPECT_EQ(exporter->Export(Batch(3)), ExportResult::kSuccess);
  EXPECT_EQ(receiver.requests(), 2);
}

TEST(FaultTest, EachRetryableStatusIsRetried) {
  for (int code : {429, 502, 503, 504}) {
    FakeReceiver receiver([code](int attempt, const httplib::Request&, httplib::Response& res) {
      if (attempt == 1) {
        res.status = code;
      } else {
        Ok(res);
      }
    });
    auto exporter = MakeOtlpHttpExporter(FastOptions(receiver.endpoint()));
    EXPECT_EQ(exporter->Export(Batch(1)), ExportResult::kSuccess) << code;
    EXPECT_EQ(receiver.requests(), 2) << code;
  }
}

TEST(FaultTest, NonRetryableStatusIsNotRetried) {
  for (int code : {400, 401, 404, 413, 500}) {
    FakeReceiver receiver(
        [](int, const httplib::Request&, httplib::Response& res) { res.status = 400; });
    (void)code;
    auto exporter = MakeOtlpHttpExporter(FastOptions(receiver.endpoint()));
    EXPECT_EQ(exporter->Export(Batch(2)), ExportResult::kFailure);
    EXPECT_EQ(receiver.requests(), 1);
  }
}

TEST(FaultTest, RetryAfterIsHonoured) {
  FakeReceiver receiver([](int attempt, const httplib::Request&, httplib::Response& res) {
    if (attempt == 1) {
      res.status = 429;
      res.set_header("Retry-After", "1");
    } else {
      Ok(res);
    }
  });
  auto o = FastOptions(receiver.endpoint());
  auto exporter = MakeOtlpHttpExporter(o);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(Batch(1)), ExportResult::kSuccess);
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 950ms);  // the backoff alone would be ~10 ms
  EXPECT_LT(elapsed, 2500ms);
  EXPECT_EQ(receiver.requests(), 2);
}

TEST(FaultTest, RetryAfterBeyondTheTimeoutGivesUpAtOnce) {
  FakeReceiver receiver([](int, const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_header("Retry-After", "60");
  });
  auto exporter = MakeOtlpHttpExporter(FastOptions(receiver.endpoint()));
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(Batch(1)), ExportResult::kFailure);
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(receiver.requests(), 1);
}

TEST(FaultTest, RetriesAreBoundedByTheExportTimeout) {
  FakeReceiver receiver(
      [](int, const httplib::Request&, httplib::Response& res) { res.status = 503; });
  auto o = FastOptions(receiver.endpoint());
  o.timeout = 400ms;
  o.retry.max_attempts = 1000;
  o.retry.initial_backoff = 50ms;
  o.retry.max_backoff = 100ms;
  auto exporter = MakeOtlpHttpExporter(o);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(Batch(1)), ExportResult::kFailure);
  EXPECT_LT(Clock::now() - start, 700ms);
  EXPECT_GE(receiver.requests(), 2);
}

// OTEL_BSP_EXPORT_TIMEOUT bounds one export even when the exporter's own
// timeout is longer: a receiver that never answers costs the worker 300 ms,
// not 10 s, and the batch is counted as failed.
TEST(FaultTest, BatchExportTimeoutCutsAHungExport) {
  std::atomic<bool> release{false};
  FakeReceiver receiver([&](int, const httplib::Request&, httplib::Response& res) {
    auto until = Clock::now() + 5s;
    while (!release.load() && Clock::now() < until) std::this_thread::sleep_for(5ms);
    Ok(res);
  });
  auto o = FastOptions(receiver.endpoint());
  o.timeout = 10s;
  BatchSpanProcessorOptions bo;
  bo.schedule_delay = 1ms;
  bo.export_timeout = 300ms;
  BatchSpanProcessor bsp(MakeOtlpHttpExporter(o), bo);
  uint64_t failed_before = Diagnostics().spans_failed;
  auto start = Clock::now();
  bsp.OnEnd(MakeSampledSpanData());
  EXPECT_TRUE(bsp.ForceFlush(5s));
  auto took = Clock::now() - start;
  release = true;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s) << "the export ran past OTEL_BSP_EXPORT_TIMEOUT";
  EXPECT_EQ(Diagnostics().spans_failed - failed_before, 1u);
  EXPECT_EQ(bsp.exported_spans(), 0u);
  EXPECT_TRUE(bsp.Shutdown(2s));
}

TEST(FaultTest, ReceiverDownNeverReachesTheApplication) {
  auto o = FastOptions("http://127.0.0.1:" + std::to_string(UnusedPort()) + "/v1/traces");
  o.timeout = 300ms;
  BatchSpanProcessorOptions bo;
  bo.schedule_delay = 20ms;
  bo.max_export_batch_size = 50;
  BatchSpanProcessor bsp(MakeOtlpHttpExporter(o), bo);
  uint64_t failed_before = Diagnostics().spans_failed;
  auto start = Clock::now();
  for (int i = 0; i < 200; ++i) bsp.OnEnd(MakeSampledSpanData());
  EXPECT_LT(Clock::now() - start, 100ms);
  bsp.ForceFlush(5s);
  EXPECT_EQ(Diagnostics().spans_failed - failed_before + bsp.dropped_spans(), 200u);
  EXPECT_EQ(bsp.exported_spans(), 0u);
  EXPECT_TRUE(bsp.Shutdown(2s));
}

TEST(FaultTest, ShutdownInterruptsRetries) {
  FakeReceiver receiver(
      [](int, const httplib::Request&, httplib::Response& res) { res.status = 503; });
  auto o = FastOptions(receiver.endpoint());
  o.timeout = 30s;
  o.retry.initial_backoff = 10s;
  o.retry.max_backoff = 10s;
  BatchSpanProcessorOptions bo;
  bo.schedule_delay = 1ms;
  BatchSpanProcessor bsp(MakeOtlpHttpExporter(o), bo);
  bsp.OnEnd(MakeSampledSpanData());
  auto deadline = Clock::now() + 2s;
  while (receiver.requests() == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  auto start = Clock::now();
  bsp.Shutdown(200ms);
  EXPECT_LT(Clock::now() - start, 1500ms);
}

TEST(FaultTest, SlowReceiverDoesNotSlowSpanEndingThreads) {
  FakeReceiver receiver([](int, const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(300ms);
    Ok(res);
  });
  BatchSpanProcessorOptions bo;
  bo.schedule_delay = 5ms;
  bo.max_export_batch_size = 20;
  bo.max_queue_size = 2048;
  BatchSpanProcessor bsp(MakeOtlpHttpExporter(FastOptions(receiver.endpoint())), bo);
  std::vector<std::thread> threads;
  std::atomic<int64_t> worst_ns{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto s = MakeSampledSpanData();
        auto t0 = Clock::now();
        bsp.OnEnd(std::move(s));
        int64_t ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        int64_t prev = worst_ns.load();
        while (ns > prev && !worst_ns.compare_exchange_weak(prev, ns)) {
        }
        if (i % 50 == 0) std::this_thread::sleep_for(1ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  // The receiver takes 300 ms per request; OnEnd must stay far below that.
  EXPECT_LT(worst_ns.load(), 50'000'000) << "worst OnEnd " << worst_ns.load() << " ns";
  bsp.Shutdown(100ms);
}

long RssKb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  }
  return 0;
}

TEST(FaultTest, QueueOverflowDropsAreCountedAndMemoryBounded) {
  FakeReceiver receiver([](int, const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(1s);  // a stalled receiver
    Ok(res);
  });
  BatchSpanProcessorOptions bo;
  bo.schedule_delay = 1ms;
  bo.max_queue_size = 256;
  bo.max_export_batch_size = 64;
  auto o = FastOptions(receiver.endpoint());
  BatchSpanProcessor bsp(MakeOtlpHttpExporter(o), bo);
  uint64_t dropped_before = Diagnostics().spans_dropped;
  long rss_before = RssKb();
  constexpr int kSpans = 200000;
  for (int i = 0; i < kSpans; ++i) {
    auto s = MakeSampledSpanData();
    s->attributes.push_back({"payload", std::string(200, 'x')});
    bsp.OnEnd(std::move(s));
  }
  long rss_growth_kb = RssKb() - rss_before;
  uint64_t dropped = Diagnostics().spans_dropped - dropped_before;
  EXPECT_GE(dropped, static_cast<uint64_t>(kSpans - 256 - 64 * 2));
  EXPECT_EQ(dropped, bsp.dropped_spans());
  // 200k spans of ~300 bytes would be ~60 MB if kept.
  EXPECT_LT(rss_growth_kb, 20 * 1024) << "RSS grew by " << rss_growth_kb << " kB";
  bsp.Shutdown(100ms);
}

TEST(FaultTest, GrpcReceiverDownFailsWithinTheTimeout) {
  auto o = FastOptions("http://127.0.0.1:" + std::to_string(UnusedPort()));
  o.protocol = OtlpProtocol::kGrpc;
  o.timeout = 500ms;
  auto exporter = MakeOtlpExporter(o);
  auto start = Clock::now();
  EXPECT_EQ(exporter->Export(Batch(2)), ExportResult::kFailure);
  EXPECT_LT(Clock::now() - start, 1500ms);
}

TEST(FaultTest, PartialSuccessIsCountedNotRetried) {
  FakeReceiver receiver([](int, const httplib::Request&, httplib::Response& res) {
    // ExportTraceServiceResponse{partial_success{rejected_spans: 2, error_message: "bad"}}
    res.status = 200;
    res.set_content(std::string("\x0a\x07\x08\x02\x12\x03"
                                "bad",
                                9),
                    "application/x-protobuf");
  });
  auto exporter = MakeOtlpHttpExporter(FastOptions(receiver.endpoint()));
  uint64_t failed_before = Diagnostics().spans_failed;
  EXPECT_EQ(exporter->Export(Batch(5)), ExportResult::kSuccess);
  EXPECT_EQ(Diagnostics().spans_failed - failed_before, 2u);
  EXPECT_EQ(receiver.requests(), 1);
}

}  // namespace
}  // namespace prism::tracing
