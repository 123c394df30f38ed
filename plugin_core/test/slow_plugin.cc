// prism_test_slow_plugin: a KeyValue plugin (sync API) whose Get sleeps for
// --delay-ms and logs a line inside the SERVER span. Used to prove Serve's
// graceful shutdown and log correlation. Other methods are UNIMPLEMENTED.
#include <thread>

#include "prism/plugin/log.h"
#include "prism/plugin/serve.h"
#include "prism/tracing/context.h"
#include "prism/v1/kv.grpc.pb.h"

namespace {

class SlowKv final : public prism::v1::KeyValue::Service {
 public:
  explicit SlowKv(int64_t delay_ms) : delay_ms_(delay_ms) {}
  grpc::Status Get(grpc::ServerContext*, const prism::v1::GetRequest* req,
                   prism::v1::GetResponse* resp) override {
    prism::plugin::Log(prism::plugin::LogLevel::kInfo, "slow get of " + req->key());
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    resp->set_found(true);
    resp->set_value(req->key());
    return grpc::Status::OK;
  }

 private:
  int64_t delay_ms_;
};

}  // namespace

int main(int argc, char** argv) {
  prism::plugin::PluginDefinition def;
  def.name = "slow";
  def.description = "test plugin: Get sleeps";
  def.settings = {{"delay-ms", "how long Get sleeps", "500", false}};
  def.make_service =
      [](const prism::plugin::PluginEnv& env) -> absl::StatusOr<std::unique_ptr<grpc::Service>> {
    auto delay = env.settings.GetInt("delay-ms", 0, 60000);
    if (!delay.ok()) return delay.status();
    return std::make_unique<SlowKv>(*delay);
  };
  return prism::plugin::Serve(argc, argv, std::move(def));
}
