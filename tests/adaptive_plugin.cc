// prism_test_adaptive_plugin: a KeyValue plugin (sync API, built on
// plugin_core like every real one) whose Get behaves by key prefix, for the
// adaptive-sampling end-to-end tests. Every Get records one INTERNAL child
// span "work" under the plugin's SERVER span, so a complete trace has spans of
// both processes at two depths.
//   slow-*   sleeps --delay-ms inside "work"          (slow on the plugin side)
//   fail-*   returns INTERNAL "failed on purpose"     (an error the proxy sees)
//   inner-*  "work" ends with ERROR, the call is OK   (an error only the plugin sees)
//   other    answers at once, found=true, value=key
// Other methods are UNIMPLEMENTED.
#include <thread>

#include "prism/grpc_tracing/server.h"
#include "prism/plugin/serve.h"
#include "prism/v1/kv.grpc.pb.h"

namespace {

class AdaptiveKv final : public prism::v1::KeyValue::Service {
 public:
  AdaptiveKv(prism::tracing::Tracer tracer, int64_t delay_ms)
      : tracer_(std::move(tracer)), delay_ms_(delay_ms) {}

  grpc::Status Get(grpc::ServerContext* ctx, const prism::v1::GetRequest* req,
                   prism::v1::GetResponse* resp) override {
    const std::string& key = req->key();
    prism::tracing::StartSpanOptions o;
    o.parent = prism::grpc_tracing::ServerSpanContext(ctx);
    prism::tracing::Span work = tracer_.StartSpan("work", std::move(o));
    if (key.rfind("slow-", 0) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    }
    if (key.rfind("fail-", 0) == 0) {
      work.SetStatus(prism::tracing::StatusCode::kError, "failed on purpose");
      return grpc::Status(grpc::StatusCode::INTERNAL, "failed on purpose");
    }
    if (key.rfind("inner-", 0) == 0) {
      work.SetStatus(prism::tracing::StatusCode::kError, "retried and recovered");
    }
    resp->set_found(true);
    resp->set_value(key);
    return grpc::Status::OK;
  }

 private:
  prism::tracing::Tracer tracer_;
  int64_t delay_ms_;
};

}  // namespace

int main(int argc, char** argv) {
  prism::plugin::PluginDefinition def;
  def.name = "adaptive-test";
  def.description = "test plugin: Get behaves by key prefix (slow-, fail-, inner-)";
  def.settings = {{"delay-ms", "how long a slow- Get sleeps", "150", false}};
  def.make_service =
      [](const prism::plugin::PluginEnv& env) -> absl::StatusOr<std::unique_ptr<grpc::Service>> {
    auto delay = env.settings.GetInt("delay-ms", 0, 60000);
    if (!delay.ok()) return delay.status();
    return std::make_unique<AdaptiveKv>(env.tracer, *delay);
  };
  return prism::plugin::Serve(argc, argv, std::move(def));
}
