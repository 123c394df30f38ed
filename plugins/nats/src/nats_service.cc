#include "nats_service.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>

#include "prism/grpc_tracing/server.h"
#include "prism/plugin/log.h"
#include "prism/plugin/status.h"
#include "prism/plugin/validation.h"
#include "prism/tracing/carriers.h"
#include "prism/tracing/context.h"
#include "prism/tracing/global.h"
#include "subject.h"

namespace prism::nats {
namespace {

namespace pt = prism::tracing;
using prism::plugin::Log;
using prism::plugin::LogLevel;

// W3C context in NATS message headers: written with lower-case keys
// (traceparent, tracestate, baggage), read case-insensitively, since NATS
// headers are case-sensitive and other clients write Traceparent.
class NatsHeaderCarrier final : public pt::TextMapCarrier {
 public:
  explicit NatsHeaderCarrier(natsMsg* msg) : msg_(msg) {}
  std::optional<std::string> Get(std::string_view key) const override {
    const char** keys = nullptr;
    int count = 0;
    if (natsMsgHeader_Keys(msg_, &keys, &count) != NATS_OK) return std::nullopt;
    std::optional<std::string> out;
    for (int i = 0; i < count && !out; ++i) {
      if (!pt::internal::EqualsIgnoreCase(keys[i], key)) continue;
      const char* value = nullptr;
      if (natsMsgHeader_Get(msg_, keys[i], &value) == NATS_OK && value) out = value;
    }
    free(keys);  // the array is ours, the keys are the message's
    return out;
  }
  void Set(std::string_view key, std::string_view value) override {
    std::string k(key);
    for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    natsMsgHeader_Set(msg_, k.c_str(), std::string(value).c_str());
  }

 private:
  natsMsg* msg_;
};

// One subscription's bounded buffer between cnats' delivery thread (which
// must never block: it serves every subscription) and the stream's handler.
struct SubState {
  SubState(size_t max_messages, size_t max_bytes)
      : max_messages(max_messages), max_bytes(max_bytes) {}
  ~SubState() {
    for (natsMsg* m : queue) natsMsg_Destroy(m);
  }
  const size_t max_messages, max_bytes;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<natsMsg*> queue;
  size_t bytes = 0;
  uint64_t dropped_since = 0, dropped_total = 0;
};

void OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  SubState& st = **static_cast<std::shared_ptr<SubState>*>(closure);
  size_t size = static_cast<size_t>(std::max(0, natsMsg_GetDataLength(msg)));
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.queue.size() >= st.max_messages || st.bytes + size > st.max_bytes) {
      ++st.dropped_since;
      ++st.dropped_total;
    } else {
      st.queue.push_back(msg);
      st.bytes += size;
      msg = nullptr;
    }
  }
  if (msg) {
    natsMsg_Destroy(msg);
    return;
  }
  st.cv.notify_one();
}

// cnats calls this once the subscription is closed and its handler has
// returned: only then may the state the handler uses go.
void OnComplete(void* closure) { delete static_cast<std::shared_ptr<SubState>*>(closure); }

void OnDisconnected(natsConnection*, void*) {
  Log(LogLevel::kWarn, "disconnected from the NATS server; reconnecting");
}
void OnReconnected(natsConnection*, void*) {
  Log(LogLevel::kInfo, "reconnected to the NATS server (subscriptions restored)");
}
void OnConnected(natsConnection*, void*) { Log(LogLevel::kInfo, "connected to the NATS server"); }

grpc::Status Invalid(const absl::Status& s) { return prism::plugin::ToGrpcStatus(s); }

std::string NatsError(natsStatus s) {
  const char* text = natsStatus_GetText(s);
  return text ? text : "NATS error " + std::to_string(static_cast<int>(s));
}

void CommonAttributes(pt::Span& span, std::string_view operation, const std::string& subject,
                      int64_t body_size, const std::string& server_address, int server_port) {
  span.SetAttribute("messaging.system", "nats");
  span.SetAttribute("messaging.operation.type", operation);
  span.SetAttribute("messaging.operation.name", operation);
  span.SetAttribute("messaging.destination.name", subject);
  if (IsTemporarySubject(subject)) span.SetAttribute("messaging.destination.temporary", true);
  span.SetAttribute("messaging.message.body.size", body_size);
  if (!server_address.empty()) span.SetAttribute("server.address", server_address);
  if (server_port > 0) span.SetAttribute("server.port", int64_t{server_port});
}

}  // namespace

absl::StatusOr<std::unique_ptr<NatsService>> NatsService::Open(NatsOptions options) {
  std::unique_ptr<NatsService> svc(new NatsService(std::move(options)));
  const NatsOptions& o = svc->o_;
  // nats://host:port -> server.address / server.port of the spans.
  std::string rest = o.url;
  if (size_t p = rest.find("://"); p != std::string::npos) rest = rest.substr(p + 3);
  if (size_t at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  if (size_t colon = rest.rfind(':'); colon != std::string::npos) {
    svc->server_address_ = rest.substr(0, colon);
    svc->server_port_ = std::atoi(rest.c_str() + colon + 1);
  } else {
    svc->server_address_ = rest;
    svc->server_port_ = 4222;
  }

  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return absl::InternalError("natsOptions_Create failed");
  natsStatus s = natsOptions_SetURL(opts, o.url.c_str());
  if (s == NATS_OK && !o.connection_name.empty())
    s = natsOptions_SetName(opts, o.connection_name.c_str());
  // Reconnect for ever (a restarted server is found again, subscriptions are
  // re-sent by cnats), a connect that fails at start is retried the same way.
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, o.reconnect_wait_ms);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, o.connect_timeout_ms);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts, true, OnConnected, nullptr);
  // One shared delivery pool instead of a thread per subscription: the
  // callback only queues, so it never holds the pool up.
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts, true);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, OnDisconnected, nullptr);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, OnReconnected, nullptr);
  if (s != NATS_OK) {
    natsOptions_Destroy(opts);
    return absl::InvalidArgumentError("--url '" + o.url + "': " + NatsError(s));
  }
  s = natsConnection_Connect(&svc->nc_, opts);
  natsOptions_Destroy(opts);
  if (s == NATS_NOT_YET_CONNECTED) {
    Log(LogLevel::kWarn, "NATS server " + o.url + " not reachable yet; retrying in the background");
  } else if (s != NATS_OK) {
    return absl::UnavailableError("cannot connect to NATS at " + o.url + ": " + NatsError(s));
  } else {
    Log(LogLevel::kInfo, "connected to the NATS server " + o.url);
  }
  return svc;
}

NatsService::~NatsService() {
  if (nc_) natsConnection_Destroy(nc_);
}

grpc::Status NatsService::Unavailable() const {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not connected to the NATS server " + o_.url +
                                                         " (reconnecting; retry the call)");
}

grpc::Status NatsService::Publish(grpc::ServerContext*, const prism::v1::PublishRequest* req,
                                  prism::v1::PublishResponse*) {
  if (grpc::Status st = prism::plugin::ValidateNamespace(req->namespace_()); !st.ok()) return st;
  if (auto st = ValidatePublishSubject(req->subject()); !st.ok()) return Invalid(st);
  if (req->data().size() > o_.max_data_bytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "data is " + std::to_string(req->data().size()) + " bytes; the limit is " +
                            std::to_string(o_.max_data_bytes) + " (--max-data-bytes)");
  }
  if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) return Unavailable();

  // The PRODUCER span is the message's creation context: its child, the
  // CONSUMER span of each delivery, continues the publisher's trace.
  pt::StartSpanOptions so;
  so.kind = pt::SpanKind::kProducer;
  pt::Span span = o_.tracer.StartSpan(SpanName("send", req->subject()), std::move(so));
  if (span.IsRecording()) {
    CommonAttributes(span, "send", req->subject(), static_cast<int64_t>(req->data().size()),
                     server_address_, server_port_);
  }
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, req->subject().c_str(), nullptr, req->data().data(),
                                static_cast<int>(req->data().size()));
  if (s == NATS_OK && span.context().IsValid()) {
    NatsHeaderCarrier carrier(msg);
    pt::GlobalPropagator()->Inject(pt::Context::Current().WithSpanContext(span.context()), carrier);
  }
  if (s == NATS_OK) s = natsConnection_PublishMsg(nc_, msg);
  natsMsg_Destroy(msg);
  if (s == NATS_OK) {
    span.End();
    return grpc::Status::OK;
  }
  grpc::Status st =
      s == NATS_MAX_PAYLOAD
          ? grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "the message is larger than the NATS server's max_payload")
          : grpc::Status(grpc::StatusCode::UNAVAILABLE, "NATS publish failed: " + NatsError(s));
  span.SetAttribute("error.type", NatsError(s));
  span.SetStatus(pt::StatusCode::kError, st.error_message());
  span.End();
  return st;
}

grpc::Status NatsService::Subscribe(grpc::ServerContext* ctx,
                                    const prism::v1::SubscribeRequest* req,
                                    grpc::ServerWriter<prism::v1::Message>* writer) {
  if (grpc::Status st = prism::plugin::ValidateNamespace(req->namespace_()); !st.ok()) return st;
  if (auto st = ValidateSubscribeSubject(req->subject()); !st.ok()) return Invalid(st);
  if (auto st = ValidateQueueGroup(req->queue_group()); !st.ok()) return Invalid(st);
  if (stopping_.load())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the plugin is stopping");
  if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) return Unavailable();
  if (active_.fetch_add(1) >= o_.max_subscriptions) {
    active_.fetch_sub(1);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "this plugin already serves " + std::to_string(o_.max_subscriptions) +
                            " subscriptions (--max-subscriptions)");
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{active_};

  auto state = std::make_shared<SubState>(o_.buffer_messages, o_.buffer_bytes);
  auto* closure = new std::shared_ptr<SubState>(state);
  natsSubscription* sub = nullptr;
  const std::string& subject = req->subject();
  const std::string& group = req->queue_group();
  natsStatus s = group.empty()
                     ? natsConnection_Subscribe(&sub, nc_, subject.c_str(), OnMessage, closure)
                     : natsConnection_QueueSubscribe(&sub, nc_, subject.c_str(), group.c_str(),
                                                     OnMessage, closure);
  if (s != NATS_OK) {
    delete closure;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "NATS subscribe failed: " + NatsError(s));
  }
  if (natsSubscription_SetOnCompleteCB(sub, OnComplete, closure) != NATS_OK) {
    // Not expected on an open subscription; without it the closure would
    // be freed while cnats may still use it, so it is kept (a small leak).
    Log(LogLevel::kWarn, "natsSubscription_SetOnCompleteCB failed");
  }
  auto close = [&] {
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  };
  // The server knows the subscription once it answered the flush's PING:
  // only then does the caller learn (response headers) that it is subscribed.
  s = natsConnection_FlushTimeout(nc_, o_.connect_timeout_ms);
  if (s != NATS_OK) {
    close();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "NATS server did not confirm the subscription: " + NatsError(s));
  }
  writer->SendInitialMetadata();

  // The SERVER span of this Subscribe call: every CONSUMER span links to it
  // (its parent is the producer's context; semconv: the ambient span is a link).
  const pt::SpanContext stream_span = prism::grpc_tracing::ServerSpanContext(ctx);
  const bool wildcard = subject.find_first_of("*>") != std::string::npos;
  const std::string span_name = SpanName("process", subject);
  grpc::Status result = grpc::Status::OK;
  for (;;) {
    natsMsg* msg = nullptr;
    uint64_t dropped = 0, dropped_total = 0;
    {
      std::unique_lock<std::mutex> lock(state->mu);
      state->cv.wait_for(lock, std::chrono::milliseconds(50),
                         [&] { return !state->queue.empty(); });
      if (state->queue.empty()) {
        if (ctx->IsCancelled()) {
          result = grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away");
          break;
        }
        if (stopping_.load()) {
          result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the plugin is stopping");
          break;
        }
        continue;
      }
      msg = state->queue.front();
      state->queue.pop_front();
      state->bytes -= static_cast<size_t>(std::max(0, natsMsg_GetDataLength(msg)));
      dropped = state->dropped_since;
      state->dropped_since = 0;
      dropped_total = state->dropped_total;
    }
    NatsHeaderCarrier carrier(msg);
    pt::Context producer = pt::GlobalPropagator()->Extract(carrier, pt::Context());
    pt::StartSpanOptions so;
    so.kind = pt::SpanKind::kConsumer;
    // One message per delivery: the producer's context is the parent.
    so.parent = producer.span_context();
    so.root = !producer.span_context().IsValid();
    if (stream_span.IsValid()) so.links.push_back(pt::Link{stream_span, {}, 0});
    pt::Span span = o_.tracer.StartSpan(span_name, std::move(so));
    const char* msg_subject = natsMsg_GetSubject(msg);
    int len = std::max(0, natsMsg_GetDataLength(msg));
    if (span.IsRecording()) {
      CommonAttributes(span, "process", msg_subject ? msg_subject : "", len, server_address_,
                       server_port_);
      if (wildcard) span.SetAttribute("messaging.destination.template", subject);
      if (!group.empty()) span.SetAttribute("messaging.consumer.group.name", group);
      if (dropped > 0) span.SetAttribute("prism.pubsub.dropped", static_cast<int64_t>(dropped));
    }
    prism::v1::Message out;
    out.set_subject(msg_subject ? msg_subject : "");
    out.set_data(natsMsg_GetData(msg), static_cast<size_t>(len));
    out.set_dropped(dropped);
    out.set_dropped_total(dropped_total);
    const pt::SpanContext& sc = span.context().IsValid() ? span.context() : producer.span_context();
    if (sc.IsValid()) {
      std::map<std::string, std::string> fields;
      pt::MapCarrier fc(fields);
      pt::GlobalPropagator()->Inject(producer.WithSpanContext(sc), fc);
      out.set_traceparent(fields["traceparent"]);
      out.set_tracestate(fields["tracestate"]);
    }
    natsMsg_Destroy(msg);
    bool ok = writer->Write(out);
    if (!ok) span.SetStatus(pt::StatusCode::kError, "the subscriber went away");
    span.End();
    if (!ok) {
      result = grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away");
      break;
    }
  }
  close();
  return result;
}

}  // namespace prism::nats
