// prism-example-trace: records one small nested trace and exports it the way
// the OTEL_* environment says (OTLP http/protobuf to localhost:4318 by
// default; try OTEL_TRACES_EXPORTER=console, or =file with PRISM_TRACE_FILE).
//
//   OTEL_TRACES_EXPORTER=console ./prism-example-trace
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 ./prism-example-trace
//   OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317
//   ./prism-example-trace
//
// The trace: a SERVER root span with attributes of every type and an event,
// linked to another trace; a CLIENT child that fails (error status and an
// exception event). Exits 0 whether or not a receiver is listening.

#include <chrono>
#include <cstdio>
#include <thread>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/exporters/setup.h"
#include "prism/tracing/tracer.h"

using namespace prism::tracing;

int main() {
  auto provider = InitTracingFromEnvironment("prism-example-trace");
  Tracer tracer = provider->GetTracer("prism.example", "0.1.0");

  // A span of another trace that this request is related to.
  const SpanContext linked(TraceId::FromHex("0af7651916cd43dd8448eb211c80319c"),
                           SpanId::FromHex("b7ad6b7169203331"), trace_flags::kSampled,
                           /*remote=*/true);

  StartSpanOptions root_options;
  root_options.kind = SpanKind::kServer;
  root_options.links.push_back(Link{linked, {{"link.reason", std::string("follows-batch")}}, 0});
  Span root = tracer.StartSpan("prism.example.KeyValue/Get", std::move(root_options));
  root.SetAttribute("rpc.system", "grpc");
  root.SetAttribute("rpc.method", "Get");
  root.SetAttribute("prism.namespace", "default");
  root.SetAttribute("prism.cache_hit", false);
  root.SetAttribute("prism.attempt", 1);
  root.SetAttribute("prism.load", 0.42);
  root.SetAttribute("prism.keys", std::vector<std::string>{"user:1", "user:2"});
  root.SetAttribute("prism.sizes", std::vector<int64_t>{128, 256});
  root.SetAttribute("prism.weights", std::vector<double>{0.5, 1.5});
  root.SetAttribute("prism.flags", std::vector<bool>{true, false});
  root.AddEvent("request.validated", {{"prism.keys.count", int64_t{2}}});

  {
    StartSpanOptions child_options;
    child_options.kind = SpanKind::kClient;
    child_options.parent = root.context();  // explicit parent, as async code does
    Span child = tracer.StartSpan("SELECT prism.kv", std::move(child_options));
    child.SetAttribute("db.system.name", "postgresql");
    child.SetAttribute("db.operation.name", "SELECT");
    child.SetAttribute("db.collection.name", "kv");
    child.SetAttribute("server.address", "db.internal");
    child.SetAttribute("server.port", 5432);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    child.RecordException("std::runtime_error", "connection reset by peer");
    child.SetStatus(StatusCode::kError, "connection reset by peer");
    child.End();
  }
  root.SetStatus(StatusCode::kError, "backend unavailable");
  root.End();

  std::printf("trace %s\n", root.context().trace_id().ToHex().c_str());
  provider->ForceFlush(std::chrono::seconds(15));
  provider->Shutdown(std::chrono::seconds(5));
  return 0;
}
