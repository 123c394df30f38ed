// prism-plugin-nats: prism.v1.PubSub on core NATS (cnats).
#include <memory>
#include <type_traits>

#include "nats_service.h"
#include "prism/plugin/serve.h"
#include "subject.h"

int main(int argc, char** argv) {
  prism::plugin::PluginDefinition def;
  def.name = "nats";
  def.description =
      "PubSub on core NATS: Publish and Subscribe with W3C trace context in the message headers.";
  def.settings = {
      {"url", "NATS server URL", "nats://127.0.0.1:4222", false},
      {"connection-name", "name of the NATS connection (\"\": none)", "prism-plugin-nats", false},
      {"reconnect-wait-ms", "wait between reconnect attempts (reconnects never stop)", "250",
       false},
      {"connect-timeout-ms", "timeout of a connect attempt and of a subscription's confirmation",
       "2000", false},
      {"max-data-bytes", "largest message data a Publish may carry", "524288", false},
      {"buffer-messages", "messages buffered per subscription before new ones are dropped", "256",
       false},
      {"buffer-bytes", "data bytes buffered per subscription before new ones are dropped",
       "8388608", false},
      {"max-subscriptions", "open Subscribe streams this plugin serves at once", "1024", false},
  };
  // Set by make_service, read by on_stopping (same thread, before serving).
  static prism::nats::NatsService* service_ptr = nullptr;
  def.make_service =
      [](const prism::plugin::PluginEnv& env) -> absl::StatusOr<std::unique_ptr<grpc::Service>> {
    prism::nats::NatsOptions o;
    o.connection_name = env.settings.Get("connection-name");
    o.url = env.settings.Get("url");
    if (o.connection_name.size() > 128) {
      return absl::InvalidArgumentError("--connection-name: at most 128 bytes");
    }
    // cnats checks the URL's form when it connects (a bad one: exit code 1).
    if (o.url.empty() || o.url.size() > 1024) {
      return absl::InvalidArgumentError("--url: expected nats://HOST:PORT (at most 1024 bytes)");
    }
    // Each bounded setting into its field, or the error naming the flag.
    auto read = [&](const char* name, int64_t min, int64_t max, auto& field) -> absl::Status {
      auto v = env.settings.GetInt(name, min, max);
      if (!v.ok()) return v.status();
      field = static_cast<std::remove_reference_t<decltype(field)>>(*v);
      return absl::OkStatus();
    };
    for (absl::Status st : {read("reconnect-wait-ms", 1, 600000, o.reconnect_wait_ms),
                            read("connect-timeout-ms", 1, 600000, o.connect_timeout_ms),
                            read("max-data-bytes", 0, 64 * 1024 * 1024, o.max_data_bytes),
                            read("buffer-messages", 1, 1 << 20, o.buffer_messages),
                            read("buffer-bytes", 1, int64_t{1} << 32, o.buffer_bytes),
                            read("max-subscriptions", 1, 100000, o.max_subscriptions)}) {
      if (!st.ok()) return st;
    }
    if (o.buffer_bytes < o.max_data_bytes) {
      return absl::InvalidArgumentError(
          "--buffer-bytes must be at least --max-data-bytes (one message must fit)");
    }
    o.tracer = env.tracer;
    auto service = prism::nats::NatsService::Open(std::move(o));
    if (!service.ok()) return service.status();
    service_ptr = service->get();
    return std::unique_ptr<grpc::Service>(std::move(*service));
  };
  // Subscriptions last until their caller cancels: end them so the drain
  // does not wait for them until --shutdown-timeout-ms.
  def.on_stopping = [] {
    if (service_ptr) service_ptr->Stop();
  };
  return prism::plugin::Serve(argc, argv, std::move(def));
}
