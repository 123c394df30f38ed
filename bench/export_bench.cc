// Export path benchmarks: span start+end through the batch processor, OTLP
// protobuf / JSON encoding throughput (batches of 512 spans), and the trace
// file exporter with and without its size cap.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "prism/tracing/exporters/batch_span_processor.h"
#include "prism/tracing/exporters/file_exporter.h"
#include "prism/tracing/exporters/otlp_encoder.h"
#include "prism/tracing/tracer.h"

using namespace prism::tracing;

namespace {

// Start + end of a sampled span through BatchSpanProcessor(noop exporter).
void BM_SpanStartEnd_BatchProcessor(benchmark::State& state) {
  TracerProviderOptions o;
  o.processors.push_back(std::make_unique<BatchSpanProcessor>(std::make_unique<NoopSpanExporter>(),
                                                              BatchSpanProcessorOptions{}));
  auto provider = std::make_shared<TracerProvider>(std::move(o));
  Tracer tracer = provider->GetTracer("bench");
  for (auto _ : state) {
    Span s = tracer.StartSpan("operation", SpanKind::kServer);
    s.End();
  }
  state.SetItemsProcessed(state.iterations());
  provider->Shutdown();
}
BENCHMARK(BM_SpanStartEnd_BatchProcessor)->ThreadRange(1, 2)->UseRealTime();

// Same, with three attributes, as instrumented RPCs have.
void BM_SpanWithAttributes_BatchProcessor(benchmark::State& state) {
  TracerProviderOptions o;
  o.processors.push_back(std::make_unique<BatchSpanProcessor>(std::make_unique<NoopSpanExporter>(),
                                                              BatchSpanProcessorOptions{}));
  auto provider = std::make_shared<TracerProvider>(std::move(o));
  Tracer tracer = provider->GetTracer("bench");
  for (auto _ : state) {
    Span s = tracer.StartSpan("operation", SpanKind::kServer);
    s.SetAttribute("rpc.system", "grpc");
    s.SetAttribute("rpc.method", "Get");
    s.SetAttribute("rpc.grpc.status_code", 0);
    s.End();
  }
  state.SetItemsProcessed(state.iterations());
  provider->Shutdown();
}
BENCHMARK(BM_SpanWithAttributes_BatchProcessor);

class Capture : public SpanProcessor {
 public:
  explicit Capture(std::vector<std::unique_ptr<SpanData>>* out) : out_(out) {}
  void OnEnd(std::unique_ptr<SpanData> span) override { out_->push_back(std::move(span)); }
  bool ForceFlush(Timeout) override { return true; }
  bool Shutdown(Timeout) override { return true; }

 private:
  std::vector<std::unique_ptr<SpanData>>* out_;
};

// 512 realistic spans: a server span and a database client span alternating,
// 6-8 attributes each, one event on every other span.
struct Batch512 {
  std::vector<std::unique_ptr<SpanData>> spans;
  std::shared_ptr<TracerProvider> provider;
  Batch512() {
    TracerProviderOptions o;
    o.resource = Resource({{"service.name", std::string("prism-proxy")},
                           {"service.version", std::string("0.1.0")},
                           {"host.name", std::string("bench-host")},
                           {"process.pid", int64_t{4242}}});
    o.processors.push_back(std::make_unique<Capture>(&spans));
    provider = std::make_shared<TracerProvider>(std::move(o));
    Tracer tracer = provider->GetTracer("prism.grpc", "0.1.0");
    for (int i = 0; i < 256; ++i) {
      Span server = tracer.StartSpan("prism.v1.KeyValue/Get", SpanKind::kServer);
      server.SetAttribute("rpc.system", "grpc");
      server.SetAttribute("rpc.service", "prism.v1.KeyValue");
      server.SetAttribute("rpc.method", "Get");
      server.SetAttribute("rpc.grpc.status_code", 0);
      server.SetAttribute("server.address", "10.0.0.12");
      server.SetAttribute("server.port", 50051);
      server.SetAttribute("prism.namespace", "default");
      server.SetAttribute("prism.request_id", "0f8fad5b-d9cb-469f-a165-70867728950e");
      StartSpanOptions co;
      co.kind = SpanKind::kClient;
      co.parent = server.context();
      Span db = tracer.StartSpan("SELECT kv", std::move(co));
      db.SetAttribute("db.system.name", "postgresql");
      db.SetAttribute("db.operation.name", "SELECT");
      db.SetAttribute("db.collection.name", "kv");
      db.SetAttribute("db.query.text", "SELECT v FROM kv WHERE k = $1");
      db.SetAttribute("server.address", "db.internal");
      db.SetAttribute("server.port", 5432);
      db.AddEvent("pool.acquired", {{"pool.wait_us", int64_t{12}}});
      db.End();
      server.End();
    }
  }
};

void BM_EncodeProtobuf512(benchmark::State& state) {
  Batch512 b;
  std::string out;
  size_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    otlp::EncodeProtobuf(b.spans, out);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * b.spans.size());
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["request_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EncodeProtobuf512);

void BM_EncodeJson512(benchmark::State& state) {
  Batch512 b;
  std::string out;
  size_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    otlp::EncodeJson(b.spans, out);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * b.spans.size());
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["request_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EncodeJson512);

// The trace file exporter writing batches of 512 spans (one 376 kB line
// each) to a file under /tmp, side by side: arg 0 without a size cap, arg 1
// with the default 20 MiB cap (a rotation every ~55 lines), arg 2 with a cap
// never reached (the per-line check alone).
void BM_FileExport512(benchmark::State& state) {
  Batch512 b;
  const std::string path = std::filesystem::temp_directory_path().string() + "/prism-bench-file-" +
                           std::to_string(getpid()) + ".jsonl";
  FileExporterOptions o;
  o.path = path;
  // 0: no cap; 1: the default cap; 2: a cap never reached (the checks alone).
  o.max_bytes = state.range(0) == 0   ? 0
                : state.range(0) == 1 ? kDefaultTraceFileMaxMb << 20
                                      : uint64_t{1} << 40;
  auto exporter = MakeFileExporter(o);
  for (auto _ : state) exporter->Export(b.spans);
  exporter->Shutdown(Timeout(0));
  std::filesystem::remove(path);
  std::filesystem::remove(path + ".1");
  state.SetItemsProcessed(state.iterations() * b.spans.size());
}
BENCHMARK(BM_FileExport512)->Arg(0)->Arg(1)->Arg(2);

}  // namespace

BENCHMARK_MAIN();
