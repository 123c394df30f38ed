// Tracing SDK hot paths. Compare with opentelemetry-cpp's figures quoted in
// docs/benchmarks.md (same operations, same kind of machine).

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "prism/tracing/adaptive.h"
#include "prism/tracing/carriers.h"
#include "prism/tracing/propagation.h"
#include "prism/tracing/tracer.h"

namespace pt = prism::tracing;

namespace {

// The RPC start attributes of a prism.v1.KeyValue/Get span (room for 16).
pt::Attributes RpcAttributes(const char* server_address) {
  pt::Attributes a;
  a.reserve(16);
  pt::AppendString(a, "rpc.system", "grpc");
  pt::AppendString(a, "rpc.system.name", "grpc");
  pt::AppendString(a, "rpc.service", "prism.v1.KeyValue");
  pt::AppendString(a, "rpc.method", "Get");
  pt::AppendString(a, "server.address", server_address);
  return a;
}

std::unique_ptr<pt::TracerProvider> MakeProvider(std::unique_ptr<pt::Sampler> sampler,
                                                 bool disabled = false) {
  pt::TracerProviderOptions o;
  o.resource = pt::Resource(pt::Attributes{{"service.name", std::string("bench")}});
  o.sampler = std::move(sampler);
  o.disabled = disabled;
  o.processors.push_back(
      std::make_unique<pt::SimpleSpanProcessor>(std::make_unique<pt::NoopSpanExporter>()));
  return std::make_unique<pt::TracerProvider>(std::move(o));
}

void BM_SpanStartEnd_AlwaysOn(benchmark::State& state) {
  auto provider = MakeProvider(pt::MakeAlwaysOnSampler());
  pt::Tracer tracer = provider->GetTracer("bench");
  for (auto _ : state) {
    pt::Span span = tracer.StartSpan("operation");
    span.End();
  }
}
BENCHMARK(BM_SpanStartEnd_AlwaysOn);

void BM_SpanStartEnd_AlwaysOff(benchmark::State& state) {
  auto provider = MakeProvider(pt::MakeAlwaysOffSampler());
  pt::Tracer tracer = provider->GetTracer("bench");
  for (auto _ : state) {
    pt::Span span = tracer.StartSpan("operation");
    span.End();
  }
}
BENCHMARK(BM_SpanStartEnd_AlwaysOff);

void BM_SpanStartEnd_ParentBasedRatio001Root(benchmark::State& state) {
  auto provider = MakeProvider(pt::MakeParentBasedSampler(pt::MakeTraceIdRatioSampler(0.01)));
  pt::Tracer tracer = provider->GetTracer("bench");
  for (auto _ : state) {
    pt::Span span = tracer.StartSpan("operation");
    span.End();
  }
}
BENCHMARK(BM_SpanStartEnd_ParentBasedRatio001Root);

void BM_SpanStartEnd_SdkDisabled(benchmark::State& state) {
  auto provider = MakeProvider(nullptr, /*disabled=*/true);
  pt::Tracer tracer = provider->GetTracer("bench");
  for (auto _ : state) {
    pt::Span span = tracer.StartSpan("operation");
    span.End();
  }
}
BENCHMARK(BM_SpanStartEnd_SdkDisabled);

void BM_Span5StringAttributesAnd1Event(benchmark::State& state) {
  auto provider = MakeProvider(pt::MakeAlwaysOnSampler());
  pt::Tracer tracer = provider->GetTracer("bench");
  for (auto _ : state) {
    pt::Span span = tracer.StartSpan("operation");
    span.SetAttribute("attr.one", "value-one");
    span.SetAttribute("attr.two", "value-two");
    span.SetAttribute("attr.three", "value-three");
    span.SetAttribute("attr.four", "value-four");
    span.SetAttribute("attr.five", "value-five");
    span.AddEvent("event");
    span.End();
  }
}
BENCHMARK(BM_Span5StringAttributesAnd1Event);

// The shape of the proxy's SERVER span: six attributes at start, five set
// later (two of them integers), a status.
void BM_RpcServerSpanShape(benchmark::State& state) {
  auto provider = MakeProvider(pt::MakeAlwaysOnSampler());
  pt::Tracer tracer = provider->GetTracer("bench");
  const std::string request_id = "3f2a9c1e-77b0-4d0e-9a51-1c2b3d4e5f60";
  const std::string ns = "default";
  for (auto _ : state) {
    pt::StartSpanOptions o;
    o.kind = pt::SpanKind::kServer;
    o.attributes = RpcAttributes("127.0.0.1");
    pt::AppendInt(o.attributes, "server.port", 7070);
    pt::Span span = tracer.StartSpan("prism.v1.KeyValue/Get", std::move(o));
    span.SetAttribute("network.peer.address", "127.0.0.1");
    span.SetAttribute("network.peer.port", int64_t{51234});
    span.SetAttribute("prism.request_id", request_id);
    span.SetAttribute("prism.namespace", ns);
    span.SetAttribute("rpc.grpc.status_code", int64_t{0});
    span.SetAttribute("rpc.status_code", std::string_view("OK"));
    span.End();
  }
}
BENCHMARK(BM_RpcServerSpanShape);

void BM_ExtractTraceparentAndTracestate(benchmark::State& state) {
  auto propagator = pt::MakeW3CTraceContextPropagator();
  std::map<std::string, std::string> headers{
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}};
  pt::MapCarrier carrier(headers);
  for (auto _ : state) {
    pt::Context ctx = propagator->Extract(carrier, pt::Context());
    benchmark::DoNotOptimize(ctx);
  }
}
BENCHMARK(BM_ExtractTraceparentAndTracestate);

void BM_ExtractTraceparentOnly(benchmark::State& state) {
  auto propagator = pt::MakeW3CTraceContextPropagator();
  std::map<std::string, std::string> headers{
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}};
  pt::MapCarrier carrier(headers);
  for (auto _ : state) {
    pt::Context ctx = propagator->Extract(carrier, pt::Context());
    benchmark::DoNotOptimize(ctx);
  }
}
BENCHMARK(BM_ExtractTraceparentOnly);

void BM_Inject(benchmark::State& state) {
  auto propagator = pt::MakeW3CTraceContextPropagator();
  pt::Context ctx(pt::SpanContext(pt::GenerateTraceId(), pt::GenerateSpanId(), 3, false));
  std::map<std::string, std::string> headers;
  pt::MapCarrier carrier(headers);
  for (auto _ : state) {
    propagator->Inject(ctx, carrier);
    benchmark::DoNotOptimize(headers);
  }
}
BENCHMARK(BM_Inject);

// One proxied request's spans as the proxy records them (SERVER with the RPC
// attributes, auth and routing INTERNAL spans, the CLIENT call to the plugin),
// ended children first. Arg 0: always_on with a no-op exporter; arg 1:
// adaptive sampling (prism_adaptive, head role) deciding "drop" at the root -
// the path 99 % of requests took with adaptive sampling before deferred
// recording; arg 2: the path they take now (the proxy's deferred recording:
// contexts and times only, the drop counted).
// Iterations over every run of it, for instructions per request under
// callgrind (--toggle-collect='*BM_ProxyRequestShape*'; printed at exit).
struct IterationCount {
  uint64_t n = 0;
  ~IterationCount() {
    if (n && std::getenv("PRISM_BENCH_COUNT"))
      std::fprintf(stderr, "iterations: %llu\n", (unsigned long long)n);
  }
} g_proxy_shape_iterations;

void BM_ProxyRequestShape(benchmark::State& state) {
  std::unique_ptr<pt::TracerProvider> provider;
  std::shared_ptr<pt::AdaptiveSampling> adaptive;
  if (state.range(0) == 0 || state.range(0) == 3) {
    provider = MakeProvider(pt::MakeAlwaysOnSampler());
  } else {
    pt::AdaptiveOptions a;
    a.ratio = 0;
    a.slow = std::chrono::milliseconds(0);
    adaptive = std::make_shared<pt::AdaptiveSampling>(a);
    pt::TracerProviderOptions o;
    o.resource = pt::Resource(pt::Attributes{{"service.name", std::string("bench")}});
    o.adaptive = adaptive;
    o.processors.push_back(
        std::make_unique<pt::SimpleSpanProcessor>(std::make_unique<pt::NoopSpanExporter>()));
    provider = std::make_unique<pt::TracerProvider>(std::move(o));
  }
  pt::Tracer tracer = provider->GetTracer("bench");
  const std::string request_id = "3f2a9c1e77b04d0e9a511c2b3d4e5f60";
  const std::string ns = "default";
  const std::string plugin = "prism-plugin-memstore";
  if (state.range(0) == 2) {
    // What the proxy does for an undecided request (deferred recording,
    // docs/sampling.md): SERVER and CLIENT spans deferred (contexts only),
    // the four spans' times noted, the drop counted - no span record.
    for (auto _ : state) {
      pt::StartSpanOptions o;
      o.kind = pt::SpanKind::kServer;
      o.root = true;
      o.defer = true;
      pt::Span server = tracer.StartSpan("prism.v1.KeyValue/Get", std::move(o));
      uint64_t times[7];
      times[0] = pt::NowUnixNano();
      times[1] = pt::NowUnixNano();  // auth
      times[2] = pt::NowUnixNano();
      times[3] = pt::NowUnixNano();  // routing
      times[4] = pt::NowUnixNano();
      pt::StartSpanOptions c;
      c.kind = pt::SpanKind::kClient;
      c.parent = server.context();
      c.defer = true;
      pt::Span client = tracer.StartSpan("prism.v1.KeyValue/Get", std::move(c));
      times[5] = pt::NowUnixNano();
      times[6] = pt::NowUnixNano();
      benchmark::DoNotOptimize(times);
      adaptive->DropDeferred(server.context().trace_id());
      ++g_proxy_shape_iterations.n;
    }
    return;
  }
  if (state.range(0) == 3) {
    // Arg 0's spans as the proxy records them since the seventh pass: what
    // every call of the method (or to the plugin) has is a shared block.
    pt::Attributes server_attrs = RpcAttributes("127.0.0.1");
    pt::AppendInt(server_attrs, "server.port", 7070);
    pt::AppendString(server_attrs, "prism.operation", "get");
    const pt::SharedAttributes server_block = pt::AttributeBlock::Make(std::move(server_attrs));
    pt::Attributes client_attrs = RpcAttributes("/run/prism-proxy-x/0.sock");
    pt::AppendString(client_attrs, "prism.plugin", plugin);
    const pt::SharedAttributes client_block = pt::AttributeBlock::Make(std::move(client_attrs));
    const pt::SharedAttributes route_block =
        pt::AttributeBlock::Make({{"prism.namespace", ns}, {"prism.plugin", plugin}});
    for (auto _ : state) {
      pt::StartSpanOptions o;
      o.kind = pt::SpanKind::kServer;
      o.root = true;
      o.shared_attributes = server_block;
      pt::AppendString(o.attributes, "network.peer.address", "127.0.0.1");
      pt::AppendInt(o.attributes, "network.peer.port", 51234);
      pt::AppendString(o.attributes, "prism.request_id", request_id);
      pt::Span server = tracer.StartSpan("prism.v1.KeyValue/Get", std::move(o));
      server.SetAttribute("prism.namespace", ns);
      {
        pt::StartSpanOptions a;
        a.parent = server.context();
        pt::Span auth = tracer.StartSpan("prism.auth.verify", std::move(a));
        auth.SetAttribute("prism.namespace", ns);
        auth.SetAttribute("prism.access", "read");
        auth.SetAttribute("prism.principal", std::string("anonymous"));
      }
      {
        pt::StartSpanOptions r;
        r.parent = server.context();
        pt::Span route = tracer.StartSpan("prism.routing.select_plugin", std::move(r));
        route.SetAttributes(route_block);
      }
      {
        pt::StartSpanOptions c;
        c.kind = pt::SpanKind::kClient;
        c.parent = server.context();
        c.shared_attributes = client_block;
        pt::Span client = tracer.StartSpan("prism.v1.KeyValue/Get", std::move(c));
        client.SetAttribute("rpc.grpc.status_code", int64_t{0});
        client.SetAttribute("rpc.status_code", std::string_view("OK"));
      }
      server.SetAttribute("rpc.grpc.status_code", int64_t{0});
      server.SetAttribute("rpc.status_code", std::string_view("OK"));
      server.End();
      ++g_proxy_shape_iterations.n;
    }
    return;
  }
  for (auto _ : state) {
    pt::StartSpanOptions o;
    o.kind = pt::SpanKind::kServer;
    o.root = true;
    o.attributes = RpcAttributes("127.0.0.1");
    pt::AppendInt(o.attributes, "server.port", 7070);
    pt::AppendString(o.attributes, "network.peer.address", "127.0.0.1");
    pt::AppendInt(o.attributes, "network.peer.port", 51234);
    pt::AppendString(o.attributes, "prism.request_id", request_id);
    pt::AppendString(o.attributes, "prism.operation", "get");
    pt::Span server = tracer.StartSpan("prism.v1.KeyValue/Get", std::move(o));
    server.SetAttribute("prism.namespace", ns);
    {
      pt::StartSpanOptions a;
      a.parent = server.context();
      pt::Span auth = tracer.StartSpan("prism.auth.verify", std::move(a));
      auth.SetAttribute("prism.namespace", ns);
      auth.SetAttribute("prism.access", "read");
      auth.SetAttribute("prism.principal", std::string("anonymous"));
    }
    {
      pt::StartSpanOptions r;
      r.parent = server.context();
      pt::Span route = tracer.StartSpan("prism.routing.select_plugin", std::move(r));
      route.SetAttribute("prism.namespace", ns);
      route.SetAttribute("prism.plugin", plugin);
    }
    {
      pt::StartSpanOptions c;
      c.kind = pt::SpanKind::kClient;
      c.parent = server.context();
      c.attributes = RpcAttributes("/run/prism-proxy-x/0.sock");
      pt::AppendString(c.attributes, "prism.plugin", plugin);
      pt::Span client = tracer.StartSpan("prism.v1.KeyValue/Get", std::move(c));
      client.SetAttribute("rpc.grpc.status_code", int64_t{0});
      client.SetAttribute("rpc.status_code", std::string_view("OK"));
    }
    server.SetAttribute("rpc.grpc.status_code", int64_t{0});
    server.SetAttribute("rpc.status_code", std::string_view("OK"));
    server.End();
    ++g_proxy_shape_iterations.n;
  }
}
BENCHMARK(BM_ProxyRequestShape)->Arg(0)->Arg(1)->Arg(2)->Arg(3);

}  // namespace

BENCHMARK_MAIN();
