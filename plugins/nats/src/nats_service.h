#pragma once
// prism.v1.PubSub on core NATS (cnats). Sync gRPC API: Publish is one
// natsConnection_PublishMsg; each Subscribe stream owns one NATS
// subscription whose callback only queues the message into the stream's
// bounded buffer (or counts a drop), so a slow subscriber never blocks
// cnats' delivery or anybody else; the handler thread sends from the buffer.
// See plugins/nats/README.md.

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prism/tracing/tracer.h"
#include "prism/v1/pubsub.grpc.pb.h"

namespace prism::nats {

struct NatsOptions {
  std::string url = "nats://127.0.0.1:4222";
  std::string connection_name = "prism-plugin-nats";
  int reconnect_wait_ms = 250;
  int connect_timeout_ms = 2000;
  size_t max_data_bytes = 512 * 1024;
  // Per subscription: messages waiting to be sent to the subscriber, and
  // their bytes; past either, new messages are dropped and counted.
  size_t buffer_messages = 256;
  size_t buffer_bytes = 8 * 1024 * 1024;
  int max_subscriptions = 1024;
  prism::tracing::Tracer tracer;
};

class NatsService final : public prism::v1::PubSub::Service {
 public:
  // Connects (or keeps retrying in the background when the server is down:
  // the plugin starts either way, and calls get UNAVAILABLE until connected).
  static absl::StatusOr<std::unique_ptr<NatsService>> Open(NatsOptions options);
  ~NatsService() override;

  grpc::Status Publish(grpc::ServerContext* ctx, const prism::v1::PublishRequest* req,
                       prism::v1::PublishResponse* resp) override;
  grpc::Status Subscribe(grpc::ServerContext* ctx, const prism::v1::SubscribeRequest* req,
                         grpc::ServerWriter<prism::v1::Message>* writer) override;

  // Ends every open Subscribe stream (the plugin is stopping).
  void Stop() { stopping_.store(true); }
  // NATS subscriptions currently open (the tests compare nats-server's count).
  int active_subscriptions() const { return active_.load(); }

 private:
  explicit NatsService(NatsOptions options) : o_(std::move(options)) {}
  grpc::Status Unavailable() const;

  NatsOptions o_;
  std::string server_address_;
  int server_port_ = 0;
  natsConnection* nc_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
};

}  // namespace prism::nats
