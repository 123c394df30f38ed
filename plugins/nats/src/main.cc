// prism-plugin-nats: prism.v1.PubSub on core NATS (cnats).
#include <memory>

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
    o.url = env.settings.Get("url");
    if (o.url.empty() || o.url.size() > 1024) {
      return absl::InvalidArgumentError("--url: expected nats://HOST:PORT (at most 1024 bytes)");
    }
    o.connection_name = env.settings.Get("connection-name");
    if (o.connection_name.size() > 128) {
      return absl::InvalidArgumentError("--connection-name: at most 128 bytes");
    }
    auto wait = env.settings.GetInt("reconnect-wait-ms", 1, 600000);
    if (!wait.ok()) return wait.status();
    auto connect = env.settings.GetInt("connect-timeout-ms", 1, 600000);
    if (!connect.ok()) return connect.status();
    auto data = env.settings.GetInt("max-data-bytes", 0, 64 * 1024 * 1024);
    if (!data.ok()) return data.status();
    auto msgs = env.settings.GetInt("buffer-messages", 1, 1 << 20);
    if (!msgs.ok()) return msgs.status();
    auto bytes = env.settings.GetInt("buffer-bytes", 1, int64_t{1} << 32);
    if (!bytes.ok()) return bytes.status();
    if (*bytes < *data) {
      return absl::InvalidArgumentError(
          "--buffer-bytes must be at least --max-data-bytes (one message must fit)");
    }
    auto subs = env.settings.GetInt("max-subscriptions", 1, 100000);
    if (!subs.ok()) return subs.status();
    o.reconnect_wait_ms = static_cast<int>(*wait);
    o.connect_timeout_ms = static_cast<int>(*connect);
    o.max_data_bytes = static_cast<size_t>(*data);
    o.buffer_messages = static_cast<size_t>(*msgs);
    o.buffer_bytes = static_cast<size_t>(*bytes);
    o.max_subscriptions = static_cast<int>(*subs);
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
