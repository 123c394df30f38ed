#include "prism/tracing/exporters/batch_span_processor.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>

#include "exporters_test_util.h"
#include "prism/tracing/diagnostics.h"

namespace prism::tracing {
namespace {

using namespace std::chrono_literals;
using testing::CountingExporter;
using testing::MakeSampledSpanData;

std::unique_ptr<BatchSpanProcessor> MakeBsp(std::shared_ptr<CountingExporter::State> state,
                                            BatchSpanProcessorOptions o) {
  return std::make_unique<BatchSpanProcessor>(std::make_unique<CountingExporter>(state), o);
}

BatchSpanProcessorOptions Options(std::chrono::milliseconds schedule_delay, size_t queue,
                                  size_t batch) {
  BatchSpanProcessorOptions o;
  o.schedule_delay = schedule_delay;
  o.max_queue_size = queue;
  o.max_export_batch_size = batch;
  return o;
}

TEST(BatchSpanProcessorTest, ExportsFullBatchesNotTrickles) {
  auto state = std::make_shared<CountingExporter::State>();
  // A 10 s delay: only full batches may go out during the test.
  auto bsp = MakeBsp(state, Options(10s, 2048, 100));
  for (int i = 0; i < 1050; ++i) {
    bsp->OnEnd(MakeSampledSpanData());
    if (i % 7 == 0) std::this_thread::sleep_for(50us);  // trickle in
  }
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (state->spans.load() < 1000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(state->spans.load(), 1000u);
  {
    std::lock_guard lock(state->mutex);
    for (size_t n : state->batch_sizes) EXPECT_EQ(n, 100u);
  }
  EXPECT_TRUE(bsp->ForceFlush(5s));
  EXPECT_EQ(state->spans.load(), 1050u);
  EXPECT_TRUE(bsp->Shutdown(5s));
}

// A steady span rate with a long schedule delay: every full batch must wake
// the worker (a signal raised while the worker was draining must not be
// lost), so nothing is dropped and batches are full.
TEST(BatchSpanProcessorTest, SteadyRateExportsFullBatchesWithoutDrops) {
  auto state = std::make_shared<CountingExporter::State>();
  auto bsp = MakeBsp(state, Options(10s, 200, 50));
  auto start = std::chrono::steady_clock::now();
  for (int ms = 0; ms < 200; ++ms) {
    for (int i = 0; i < 10; ++i) bsp->OnEnd(MakeSampledSpanData());
    std::this_thread::sleep_until(start + std::chrono::milliseconds(ms + 1));
  }
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (state->spans.load() < 2000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(bsp->dropped_spans(), 0u);
  EXPECT_EQ(state->spans.load(), 2000u);
  EXPECT_EQ(state->calls.load(), 40u);
}

TEST(BatchSpanProcessorTest, ScheduleDelayExportsPartialBatch) {
  auto state = std::make_shared<CountingExporter::State>();
  BatchSpanProcessorOptions o;
  o.schedule_delay = 100ms;
  o.max_export_batch_size = 512;
  auto bsp = MakeBsp(state, o);
  for (int i = 0; i < 10; ++i) bsp->OnEnd(MakeSampledSpanData());
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(state->calls.load(), 0u) << "must wait for the schedule delay";
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (state->spans.load() < 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(state->spans.load(), 10u);
  EXPECT_EQ(state->calls.load(), 1u);
}

TEST(BatchSpanProcessorTest, UnsampledSpansAreNotExported) {
  auto state = std::make_shared<CountingExporter::State>();
  auto bsp = MakeBsp(state, {});
  auto s = MakeSampledSpanData();
  s->context = SpanContext(s->context.trace_id(), s->context.span_id(), 0, false);
  bsp->OnEnd(std::move(s));
  bsp->OnEnd(MakeSampledSpanData());
  EXPECT_TRUE(bsp->ForceFlush(5s));
  EXPECT_EQ(state->spans.load(), 1u);
}

TEST(BatchSpanProcessorTest, FullQueueDropsAndCountsWithoutBlocking) {
  auto state = std::make_shared<CountingExporter::State>();
  state->stall = true;
  auto bsp = MakeBsp(state, Options(1ms, 64, 16));
  uint64_t dropped_before = Diagnostics().spans_dropped;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10000; ++i) bsp->OnEnd(MakeSampledSpanData());
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 2s) << "OnEnd must not wait for the stalled exporter";
  // At most the queue plus the batch the stalled worker holds are kept.
  EXPECT_GE(bsp->dropped_spans(), 10000u - 64 - 16);
  EXPECT_GE(Diagnostics().spans_dropped - dropped_before, bsp->dropped_spans());
  EXPECT_LE(bsp->queued(), 64u);
  state->stall = false;
  EXPECT_TRUE(bsp->ForceFlush(5s));
  EXPECT_EQ(state->spans.load() + bsp->dropped_spans(), 10000u);
}

TEST(BatchSpanProcessorTest, ShutdownDrainsAndLaterSpansAreDropped) {
  auto state = std::make_shared<CountingExporter::State>();
  BatchSpanProcessorOptions o;
  o.schedule_delay = 10s;
  auto bsp = MakeBsp(state, o);
  for (int i = 0; i < 700; ++i) bsp->OnEnd(MakeSampledSpanData());
  EXPECT_TRUE(bsp->Shutdown(5s));
  EXPECT_EQ(state->spans.load(), 700u);
  bsp->OnEnd(MakeSampledSpanData());
  EXPECT_EQ(bsp->dropped_spans(), 1u);
  EXPECT_FALSE(bsp->ForceFlush(1s));
}

TEST(BatchSpanProcessorTest, ShutdownIsBoundedWithAStuckExporter) {
  auto state = std::make_shared<CountingExporter::State>();
  state->stall = true;  // CountingExporter un-stalls when shut down
  BatchSpanProcessorOptions o;
  o.schedule_delay = 1ms;
  auto bsp = MakeBsp(state, o);
  for (int i = 0; i < 10; ++i) bsp->OnEnd(MakeSampledSpanData());
  std::this_thread::sleep_for(20ms);
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(bsp->ForceFlush(50ms));
  bsp->Shutdown(100ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(BatchSpanProcessorTest, ForceFlushWithDeadline) {
  auto state = std::make_shared<CountingExporter::State>();
  state->delay_ms = 20;
  BatchSpanProcessorOptions o;
  o.schedule_delay = 10s;
  o.max_export_batch_size = 10;
  auto bsp = MakeBsp(state, o);
  for (int i = 0; i < 25; ++i) bsp->OnEnd(MakeSampledSpanData());
  EXPECT_TRUE(bsp->ForceFlush(5s));
  EXPECT_EQ(state->spans.load(), 25u);
}

TEST(BatchSpanProcessorTest, OptionsFromEnvironment) {
  testing::ScopedEnv a("OTEL_BSP_SCHEDULE_DELAY", "250");
  testing::ScopedEnv b("OTEL_BSP_EXPORT_TIMEOUT", "1000");
  testing::ScopedEnv c("OTEL_BSP_MAX_QUEUE_SIZE", "100");
  testing::ScopedEnv d("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500");
  auto o = BatchSpanProcessorOptions::FromEnvironment();
  EXPECT_EQ(o.schedule_delay, 250ms);
  EXPECT_EQ(o.export_timeout, 1000ms);
  EXPECT_EQ(o.max_queue_size, 100u);
  EXPECT_EQ(o.max_export_batch_size, 100u);  // clamped to the queue size
}

TEST(BatchSpanProcessorTest, Defaults) {
  testing::ScopedEnv a("OTEL_BSP_SCHEDULE_DELAY", nullptr);
  testing::ScopedEnv b("OTEL_BSP_EXPORT_TIMEOUT", nullptr);
  testing::ScopedEnv c("OTEL_BSP_MAX_QUEUE_SIZE", nullptr);
  testing::ScopedEnv d("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", nullptr);
  auto o = BatchSpanProcessorOptions::FromEnvironment();
  EXPECT_EQ(o.schedule_delay, 5000ms);
  EXPECT_EQ(o.export_timeout, 30000ms);
  EXPECT_EQ(o.max_queue_size, 2048u);
  EXPECT_EQ(o.max_export_batch_size, 512u);
}

// Several threads end spans at once while the worker drains: the lock-free
// ring loses none (the queue can hold them all) and exports none twice.
// make test also runs it under ThreadSanitizer (make unit-tsan).
TEST(BatchSpanProcessorTest, ConcurrentProducersLoseNothingAndExportNothingTwice) {
  struct Seen {
    std::mutex mu;
    std::map<std::string, int> names;
  };
  class NameExporter : public SpanExporter {
   public:
    explicit NameExporter(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
    ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) override {
      std::lock_guard lock(seen_->mu);
      for (const auto& s : spans) ++seen_->names[s->name];
      return ExportResult::kSuccess;
    }
    bool Shutdown(Timeout) override { return true; }

   private:
    std::shared_ptr<Seen> seen_;
  };
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  auto seen = std::make_shared<Seen>();
  // A 1 ms delay: the worker drains while the producers push.
  BatchSpanProcessor bsp(std::make_unique<NameExporter>(seen),
                         Options(1ms, kThreads * kPerThread, 64));
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&bsp, t] {
      for (int i = 0; i < kPerThread; ++i) {
        bsp.OnEnd(MakeSampledSpanData(std::to_string(t) + "/" + std::to_string(i)));
      }
    });
  }
  for (auto& p : producers) p.join();
  ASSERT_TRUE(bsp.ForceFlush(30s));
  EXPECT_EQ(bsp.dropped_spans(), 0u);
  EXPECT_EQ(bsp.exported_spans(), uint64_t{kThreads * kPerThread});
  std::lock_guard lock(seen->mu);
  EXPECT_EQ(seen->names.size(), size_t{kThreads * kPerThread});
  for (const auto& [name, n] : seen->names) {
    if (n != 1) ADD_FAILURE() << name << " exported " << n << " times";
  }
  EXPECT_TRUE(bsp.Shutdown(5s));
}

// fork() while producers push and the worker exports: the parent's fork
// handlers (which take the worker's locks) neither lose nor duplicate a span
// and do not deadlock, and the child starts with an empty ring. The child
// starts no thread, so ThreadSanitizer (make unit-tsan) follows it too.
TEST(BatchSpanProcessorTest, ForkUnderLoadLosesNothingInTheParent) {
  auto state = std::make_shared<CountingExporter::State>();
  auto bsp = MakeBsp(state, Options(1ms, 8192, 64));
  constexpr int kProducers = 2;
  constexpr int kPerProducer = 3000;
  std::atomic<bool> go{false};
  std::vector<std::thread> producers;
  for (int t = 0; t < kProducers; ++t) {
    producers.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerProducer; ++i) bsp->OnEnd(MakeSampledSpanData());
    });
  }
  go.store(true);
  for (int f = 0; f < 5; ++f) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(bsp->queued() == 0 ? 0 : 2);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  for (auto& p : producers) p.join();
  ASSERT_TRUE(bsp->ForceFlush(30s));
  EXPECT_EQ(bsp->dropped_spans(), 0u);
  EXPECT_EQ(state->spans.load(), uint64_t{kProducers * kPerProducer});
  EXPECT_TRUE(bsp->Shutdown(5s));
}

// In a child after fork(): the parent's queued spans are not exported twice,
// and the child's own spans are exported by a new worker thread.
TEST(BatchSpanProcessorTest, ForkChildGetsAWorkingProcessor) {
  auto state = std::make_shared<CountingExporter::State>();
  BatchSpanProcessorOptions o;
  o.schedule_delay = 10s;
  auto bsp = MakeBsp(state, o);
  // Start the worker and let it finish a cycle first: forking while a new
  // thread is still being set up can leave ASan's allocator locked in the
  // child (GCC 12's sanitizer runtime does not lock it around fork; glibc's
  // malloc does), which hung this test about once in three CI runs.
  bsp->OnEnd(MakeSampledSpanData());
  ASSERT_TRUE(bsp->ForceFlush(5s));
  for (int i = 0; i < 5; ++i) bsp->OnEnd(MakeSampledSpanData());  // queued at the fork
  ASSERT_EQ(bsp->queued(), 5u);
  const uint64_t exported_before_fork = state->spans.load();  // 1
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: the queue is empty, a new worker exports the child's spans.
    int rc = 0;
    if (bsp->queued() != 0) rc = 2;
    for (int i = 0; i < 3; ++i) bsp->OnEnd(MakeSampledSpanData());
    if (!bsp->ForceFlush(std::chrono::seconds(5))) rc = 3;
    if (state->spans.load() - exported_before_fork != 3) rc = 4;
    bsp->Shutdown(std::chrono::seconds(1));
    _exit(rc);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(bsp->ForceFlush(5s));
  EXPECT_EQ(state->spans.load(), 6u);  // the first one, then the five queued at the fork
}

}  // namespace
}  // namespace prism::tracing

namespace prism::tracing {
namespace {

// Two exporters stuck (an unreachable collector) and one that works (the
// local trace file): MultiSpanProcessor shuts all three down at once, so the
// whole shutdown takes one timeout, not the sum, and the working exporter
// still gets its span.
TEST(MultiSpanProcessorTest, ShutsDownAllAtOnceEachWithTheWholeTimeout) {
  BatchSpanProcessorOptions o;
  o.schedule_delay = 10s;  // nothing goes out before Shutdown
  std::vector<std::shared_ptr<CountingExporter::State>> states;
  std::vector<std::unique_ptr<SpanProcessor>> processors;
  for (int i = 0; i < 3; ++i) {
    states.push_back(std::make_shared<CountingExporter::State>());
    states.back()->stall = i < 2;  // stalls until the exporter is shut down
    processors.push_back(MakeBsp(states.back(), o));
  }
  MultiSpanProcessor multi(std::move(processors));
  multi.OnEnd(MakeSampledSpanData());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(multi.Shutdown(400ms));  // the stuck ones missed the deadline
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 350ms);
  EXPECT_LT(took, 750ms) << "shut down one after the other (800 ms or more)";
  EXPECT_EQ(states[2]->spans.load(), 1u);
}

}  // namespace
}  // namespace prism::tracing
