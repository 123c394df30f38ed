// prism-w3c-service: the test service of the W3C Trace Context test suite
// (w3c/trace-context test/), backed by prism's tracing SDK.
//
// POST /test with a JSON array of {"url": ..., "arguments": ...}: the
// service extracts the trace context from the request headers with the W3C
// propagator, starts a SERVER span, and for every entry POSTs `arguments` as
// JSON to `url` from a CLIENT child span whose context it injects. A valid
// traceparent is continued (same trace id, new parent id, tracestate carried
// on); an invalid or missing one starts a new trace.

#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "prism/tracing/carriers.h"
#include "prism/tracing/propagation.h"
#include "prism/tracing/tracer.h"

namespace {

using prism::tracing::Context;
using prism::tracing::HeaderCarrier;
using prism::tracing::Span;
using prism::tracing::SpanKind;
using prism::tracing::StartSpanOptions;
using prism::tracing::TextMapPropagator;
using prism::tracing::Tracer;

void Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--host ADDRESS] [--port PORT]\n"
               "  Serves POST /test for the W3C Trace Context test suite\n"
               "  (default 127.0.0.1:5000).\n",
               argv0);
}

// "http://host:port/path" -> ("http://host:port", "/path").
bool SplitUrl(const std::string& url, std::string& base, std::string& path) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return false;
  size_t slash = url.find('/', scheme + 3);
  base = url.substr(0, slash);
  path = slash == std::string::npos ? "/" : url.substr(slash);
  return !base.empty();
}

class Service {
 public:
  Service(Tracer tracer, std::unique_ptr<TextMapPropagator> propagator)
      : tracer_(std::move(tracer)), propagator_(std::move(propagator)) {}

  void Handle(const httplib::Request& req, httplib::Response& res) const {
    nlohmann::json actions = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (actions.is_discarded()) {
      res.status = 400;
      res.set_content(R"({"error":"body is not JSON"})", "application/json");
      return;
    }
    if (!actions.is_array()) actions = nlohmann::json::array({actions});

    // The carrier needs a mutable map; the request's headers are const.
    httplib::Headers incoming = req.headers;
    HeaderCarrier in_carrier(incoming);
    Context parent = propagator_->Extract(in_carrier, Context());

    StartSpanOptions server_options;
    server_options.kind = SpanKind::kServer;
    if (parent.span_context().IsValid()) {
      server_options.parent = parent.span_context();
    } else {
      server_options.root = true;  // missing or invalid traceparent: restart
    }
    Span server = tracer_.StartSpan("POST /test", std::move(server_options));

    nlohmann::json results = nlohmann::json::array();
    for (const auto& action : actions) {
      nlohmann::json result;
      if (!action.is_object() || !action.contains("url") || !action["url"].is_string()) {
        result["error"] = "entry without a url";
        results.push_back(std::move(result));
        continue;
      }
      const std::string url = action["url"].get<std::string>();
      nlohmann::json arguments = nlohmann::json::array();
      if (action.contains("arguments") && !action["arguments"].is_null()) {
        arguments = action["arguments"];
      }
      result["url"] = url;

      StartSpanOptions client_options;
      client_options.kind = SpanKind::kClient;
      client_options.parent = server.context();
      Span client = tracer_.StartSpan("POST", std::move(client_options));

      httplib::Headers outgoing;
      HeaderCarrier out_carrier(outgoing);
      propagator_->Inject(Context(client.context(), parent.baggage()), out_carrier);

      std::string base;
      std::string path;
      if (!SplitUrl(url, base, path)) {
        result["error"] = "bad url";
        results.push_back(std::move(result));
        continue;
      }
      httplib::Client http(base);
      http.set_connection_timeout(5);
      http.set_read_timeout(5);
      auto response = http.Post(path, outgoing, arguments.dump(), "application/json");
      if (response) {
        result["status"] = response->status;
      } else {
        result["error"] = httplib::to_string(response.error());
      }
      client.End();
      results.push_back(std::move(result));
    }
    server.End();
    res.status = 200;
    res.set_content(results.dump(), "application/json");
  }

 private:
  Tracer tracer_;
  std::unique_ptr<TextMapPropagator> propagator_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 5000;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if ((arg == "--port" || arg == "-p") && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (arg == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      Usage(argv[0]);
      return 0;
    } else {
      Usage(argv[0]);
      return 2;
    }
  }
  if (port <= 0 || port > 65535) {
    Usage(argv[0]);
    return 2;
  }

  // A recording provider without processors: spans get real ids and follow
  // the sampler (parentbased_always_on) but go nowhere.
  prism::tracing::TracerProviderOptions options;
  prism::tracing::TracerProvider provider(std::move(options));
  std::vector<std::unique_ptr<TextMapPropagator>> propagators;
  propagators.push_back(prism::tracing::MakeW3CTraceContextPropagator());
  propagators.push_back(prism::tracing::MakeW3CBaggagePropagator());
  Service service(provider.GetTracer("prism-w3c-service"),
                  prism::tracing::MakeCompositePropagator(std::move(propagators)));

  httplib::Server server;
  server.Post("/test", [&service](const httplib::Request& req, httplib::Response& res) {
    service.Handle(req, res);
  });
  std::fprintf(stderr, "prism-w3c-service listening on http://%s:%d/test\n", host.c_str(), port);
  if (!server.listen(host, port)) {
    std::fprintf(stderr, "prism-w3c-service: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  return 0;
}
