// OTLP/gRPC exporter: a unary call to
// /opentelemetry.proto.collector.trace.v1.TraceService/Export through
// grpc::GenericStub with our own protobuf encoding as the raw request bytes.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "export_common.h"
#include "prism/tracing/diagnostics.h"
#include "prism/tracing/exporters/fork.h"
#include "prism/tracing/exporters/otlp_encoder.h"
#include "prism/tracing/exporters/otlp_exporter.h"

namespace prism::tracing {
namespace {

using otlp_internal::AttemptResult;
using otlp_internal::Clock;

constexpr const char* kMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Retryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DATA_LOSS:
      return true;
    default:
      return false;
  }
}

class OtlpGrpcExporter : public otlp_internal::DeadlineExporter {
 public:
  explicit OtlpGrpcExporter(OtlpExporterOptions options) : options_(std::move(options)) {
    fork_support::InstallHandlers();
    name_ = "OTLP grpc exporter (" + options_.endpoint + ")";
    fork_generation_ = fork_support::Generation();
    std::string_view ep = options_.endpoint;
    bool secure = !options_.insecure;
    if (ep.starts_with("http://")) {
      secure = false;
      ep.remove_prefix(7);
    } else if (ep.starts_with("https://")) {
      secure = true;
      ep.remove_prefix(8);
    }
    if (size_t slash = ep.find('/'); slash != std::string_view::npos) ep = ep.substr(0, slash);
    target_ = std::string(ep);
    if (secure) {
      grpc::SslCredentialsOptions ssl;
      if (!options_.certificate_file.empty())
        ssl.pem_root_certs = ReadFile(options_.certificate_file);
      if (!options_.client_key_file.empty())
        ssl.pem_private_key = ReadFile(options_.client_key_file);
      if (!options_.client_certificate_file.empty()) {
        ssl.pem_cert_chain = ReadFile(options_.client_certificate_file);
      }
      credentials_ = grpc::SslCredentials(ssl);
    } else {
      credentials_ = grpc::InsecureChannelCredentials();
    }
    for (auto& [k, v] : options_.headers) {
      std::string key = k;
      for (char& c : key) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      metadata_.emplace_back(std::move(key), v);
    }
  }

  ~OtlpGrpcExporter() override {
    if (fork_generation_ != fork_support::Generation()) {
      // A channel inherited across fork() must not be torn down here.
      new std::shared_ptr<grpc::Channel>(std::move(channel_));
      new std::unique_ptr<grpc::GenericStub>(std::move(stub_));
    }
  }

  // The earlier of OTEL_EXPORTER_OTLP_TIMEOUT (all attempts of this export)
  // and the caller's deadline (the batch processor's export timeout).
  ExportResult ExportWithin(std::span<const std::unique_ptr<SpanData>> spans,
                            Clock::time_point caller_deadline) override {
    if (spans.empty()) return ExportResult::kSuccess;
    if (shut_down_.load()) return ExportResult::kFailure;
    const auto deadline = std::min(Clock::now() + options_.timeout, caller_deadline);
    body_.clear();
    otlp::EncodeProtobuf(spans, body_);
    if (body_.size() > options_.max_request_bytes) {
      internal::Log(internal::LogLevel::kError,
                    name_ + ": request of " + std::to_string(body_.size()) +
                        " bytes exceeds the limit; " + std::to_string(spans.size()) +
                        " spans not sent");
      return ExportResult::kFailure;
    }
    AttemptResult result = otlp_internal::RunWithRetries(
        options_.retry, deadline, stopper_, [&](Clock::time_point dl) { return Attempt(dl); });
    otlp_internal::Account(name_.c_str(), spans.size(), result);
    return result.kind == AttemptResult::kOk ? ExportResult::kSuccess : ExportResult::kFailure;
  }

  bool Shutdown(Timeout) override {
    shut_down_.store(true);
    stopper_.Interrupt();
    std::lock_guard lock(call_mutex_);
    if (active_ != nullptr) active_->TryCancel();
    return true;
  }

 private:
  grpc::GenericStub& Stub() {
    if (stub_ != nullptr && fork_generation_ != fork_support::Generation()) {
      // Inherited from the parent: leak it rather than tear it down here.
      new std::shared_ptr<grpc::Channel>(std::move(channel_));
      new std::unique_ptr<grpc::GenericStub>(std::move(stub_));
    }
    if (stub_ == nullptr) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(4 * 1024 * 1024);
      channel_ = grpc::CreateCustomChannel(target_, credentials_, args);
      stub_ = std::make_unique<grpc::GenericStub>(channel_);
      fork_generation_ = fork_support::Generation();
    }
    return *stub_;
  }

  AttemptResult Attempt(Clock::time_point deadline) {
    if (Clock::now() >= deadline)
      return AttemptResult::Fail(AttemptResult::kFatal, "export timeout elapsed");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
    for (const auto& [k, v] : metadata_) ctx.AddMetadata(k, v);
    if (options_.gzip) ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    grpc::Slice slice(body_);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    {
      std::lock_guard lock(call_mutex_);
      if (shut_down_.load())
        return AttemptResult::Fail(AttemptResult::kAborted, "exporter shut down");
      active_ = &ctx;
    }
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    Stub().UnaryCall(&ctx, kMethod, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      std::lock_guard lock(m);
      status = std::move(s);
      done = true;
      cv.notify_one();
    });
    {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });  // bounded by the call's deadline
    }
    {
      std::lock_guard lock(call_mutex_);
      active_ = nullptr;
    }
    AttemptResult r;
    if (status.ok()) {
      r.kind = AttemptResult::kOk;
      std::vector<grpc::Slice> slices;
      std::string body;
      if (response.Dump(&slices).ok()) {
        for (const auto& s : slices)
          body.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
      if (auto ps = otlp::DecodeResponseProtobuf(body)) {
        r.rejected_spans = ps->rejected_spans;
        r.partial_message = ps->error_message;
      }
      return r;
    }
    r.error = "gRPC status " + std::to_string(static_cast<int>(status.error_code())) + ": " +
              status.error_message();
    std::optional<int64_t> retry_delay_ms;
    if (!status.error_details().empty()) {
      if (auto st = otlp::DecodeRpcStatus(status.error_details()))
        retry_delay_ms = st->retry_delay_ms;
    }
    if (shut_down_.load()) {
      r.kind = AttemptResult::kAborted;
    } else if (Retryable(status.error_code()) ||
               (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && retry_delay_ms)) {
      r.kind = AttemptResult::kRetryable;
      if (retry_delay_ms) r.retry_after = std::chrono::milliseconds(*retry_delay_ms);
    } else {
      r.kind = AttemptResult::kFatal;
    }
    return r;
  }

  const OtlpExporterOptions options_;
  std::string name_;
  std::string target_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  uint64_t fork_generation_ = 0;
  std::string body_;
  std::atomic<bool> shut_down_{false};
  otlp_internal::Stopper stopper_;
  std::mutex call_mutex_;
  grpc::ClientContext* active_ = nullptr;
};

}  // namespace

std::unique_ptr<SpanExporter> MakeOtlpGrpcExporter(OtlpExporterOptions options) {
  return std::make_unique<OtlpGrpcExporter>(std::move(options));
}

}  // namespace prism::tracing
