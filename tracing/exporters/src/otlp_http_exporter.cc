// OTLP/HTTP exporter (binary protobuf or JSON) over libcurl. One easy handle
// is reused so the connection is kept alive between exports.

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "export_common.h"
#include "prism/tracing/diagnostics.h"
#include "prism/tracing/exporters/fork.h"
#include "prism/tracing/exporters/otlp_encoder.h"
#include "prism/tracing/exporters/otlp_exporter.h"

namespace prism::tracing {
namespace {

using otlp_internal::AttemptResult;
using otlp_internal::Clock;

constexpr size_t kMaxResponseBytes = 4 * 1024 * 1024;

void CurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Response {
  std::string body;
  std::string retry_after;
  std::string content_type;
};

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  size_t len = size * n;
  if (r->body.size() < kMaxResponseBytes) {
    r->body.append(data, std::min(len, kMaxResponseBytes - r->body.size()));
  }
  return len;
}

bool HeaderIs(std::string_view line, std::string_view name, std::string_view* value) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != name[i]) return false;
  }
  std::string_view v = line.substr(name.size() + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
    v.remove_suffix(1);
  *value = v;
  return true;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string_view line(data, size * n);
  std::string_view value;
  if (line.starts_with("HTTP/")) {  // a new response (e.g. after 100 Continue)
    r->retry_after.clear();
    r->content_type.clear();
  } else if (HeaderIs(line, "retry-after", &value)) {
    r->retry_after = std::string(value);
  } else if (HeaderIs(line, "content-type", &value)) {
    r->content_type = std::string(value);
  }
  return size * n;
}

class OtlpHttpExporter : public otlp_internal::DeadlineExporter {
 public:
  explicit OtlpHttpExporter(OtlpExporterOptions options) : options_(std::move(options)) {
    CurlGlobalInit();
    fork_support::InstallHandlers();
    const bool json = options_.protocol == OtlpProtocol::kHttpJson;
    headers_ = curl_slist_append(
        headers_, json ? "Content-Type: application/json" : "Content-Type: application/x-protobuf");
    if (options_.gzip) headers_ = curl_slist_append(headers_, "Content-Encoding: gzip");
    headers_ = curl_slist_append(headers_, "Expect:");  // no 100-continue round trip
    for (const auto& [k, v] : options_.headers) {
      headers_ = curl_slist_append(headers_, (k + ": " + v).c_str());
    }
    name_ = std::string("OTLP ") + std::string(ToString(options_.protocol)) + " exporter (" +
            options_.endpoint + ")";
  }

  ~OtlpHttpExporter() override {
    if (curl_ != nullptr && fork_generation_ == fork_support::Generation())
      curl_easy_cleanup(curl_);
    curl_slist_free_all(headers_);
  }

  // The earlier of OTEL_EXPORTER_OTLP_TIMEOUT (all attempts of this export)
  // and the caller's deadline (the batch processor's export timeout).
  ExportResult ExportWithin(std::span<const std::unique_ptr<SpanData>> spans,
                            Clock::time_point caller_deadline) override {
    if (spans.empty()) return ExportResult::kSuccess;
    if (shut_down_.load()) return ExportResult::kFailure;
    const auto deadline = std::min(Clock::now() + options_.timeout, caller_deadline);
    body_.clear();
    if (options_.protocol == OtlpProtocol::kHttpJson) {
      otlp::EncodeJson(spans, body_);
    } else {
      otlp::EncodeProtobuf(spans, body_);
    }
    const std::string* payload = &body_;
    if (options_.gzip) {
      if (!otlp_internal::Gzip(body_, gzipped_)) {
        AttemptResult r = AttemptResult::Fail(AttemptResult::kFatal, "gzip failed");
        otlp_internal::Account(name_.c_str(), spans.size(), r);
        return ExportResult::kFailure;
      }
      payload = &gzipped_;
    }
    if (payload->size() > options_.max_request_bytes) {
      internal::Log(internal::LogLevel::kError,
                    name_ + ": request of " + std::to_string(payload->size()) +
                        " bytes exceeds the limit; " + std::to_string(spans.size()) +
                        " spans not sent");
      return ExportResult::kFailure;
    }
    AttemptResult result =
        otlp_internal::RunWithRetries(options_.retry, deadline, stopper_,
                                      [&](Clock::time_point dl) { return Attempt(*payload, dl); });
    otlp_internal::Account(name_.c_str(), spans.size(), result);
    return result.kind == AttemptResult::kOk ? ExportResult::kSuccess : ExportResult::kFailure;
  }

  bool Shutdown(Timeout) override {
    shut_down_.store(true);
    stopper_.Interrupt();  // ends retry waits and (via the progress callback) transfers
    return true;
  }

 private:
  CURL* Handle() {
    if (curl_ != nullptr && fork_generation_ != fork_support::Generation()) {
      // Inherited from the parent: its connection belongs to the parent.
      // Forget it without cleanup, which could write to the shared socket.
      curl_ = nullptr;
    }
    if (curl_ == nullptr) {
      curl_ = curl_easy_init();
      fork_generation_ = fork_support::Generation();
    }
    return curl_;
  }

  static int Progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<OtlpHttpExporter*>(user)->shut_down_.load() ? 1 : 0;
  }

  AttemptResult Attempt(const std::string& payload, Clock::time_point deadline) {
    AttemptResult r;
    auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) return AttemptResult::Fail(AttemptResult::kFatal, "export timeout elapsed");
    CURL* c = Handle();
    if (c == nullptr) return AttemptResult::Fail(AttemptResult::kFatal, "curl_easy_init failed");
    curl_easy_reset(c);
    Response resp;
    curl_easy_setopt(c, CURLOPT_URL, options_.endpoint.c_str());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(c, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining));
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &WriteHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, this);
    if (!options_.certificate_file.empty()) {
      curl_easy_setopt(c, CURLOPT_CAINFO, options_.certificate_file.c_str());
    }
    if (!options_.client_certificate_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, options_.client_certificate_file.c_str());
    }
    if (!options_.client_key_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLKEY, options_.client_key_file.c_str());
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
      r.error = std::string("HTTP request failed: ") + curl_easy_strerror(rc);
      switch (rc) {
        case CURLE_ABORTED_BY_CALLBACK:
          r.kind = AttemptResult::kAborted;
          break;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_PEER_FAILED_VERIFICATION:
          r.kind = AttemptResult::kFatal;
          break;
        default:  // connection refused/reset, timeouts, name resolution, ...
          r.kind = AttemptResult::kRetryable;
      }
      return r;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      r.kind = AttemptResult::kOk;
      std::optional<otlp::PartialSuccess> ps;
      if (resp.content_type.starts_with("application/json")) {
        ps = otlp::DecodeResponseJson(resp.body);
      } else if (!resp.body.empty()) {
        ps = otlp::DecodeResponseProtobuf(resp.body);
      }
      if (ps) {
        r.rejected_spans = ps->rejected_spans;
        r.partial_message = ps->error_message;
      }
      return r;
    }
    r.error = "HTTP " + std::to_string(status);
    if (!resp.body.empty()) {
      std::string message;
      if (resp.content_type.starts_with("application/x-protobuf")) {
        if (auto st = otlp::DecodeRpcStatus(resp.body)) message = st->message;
      } else {
        message = resp.body.substr(0, 256);
      }
      if (!message.empty()) r.error += ": " + message;
    }
    if (status == 429 || status == 502 || status == 503 || status == 504) {
      r.kind = AttemptResult::kRetryable;
      if (!resp.retry_after.empty()) r.retry_after = ParseRetryAfter(resp.retry_after);
    } else {
      r.kind = AttemptResult::kFatal;
    }
    return r;
  }

  const OtlpExporterOptions options_;
  std::string name_;
  curl_slist* headers_ = nullptr;
  CURL* curl_ = nullptr;
  uint64_t fork_generation_ = 0;
  std::string body_;
  std::string gzipped_;
  std::atomic<bool> shut_down_{false};
  otlp_internal::Stopper stopper_;
};

}  // namespace

std::unique_ptr<SpanExporter> MakeOtlpHttpExporter(OtlpExporterOptions options) {
  return std::make_unique<OtlpHttpExporter>(std::move(options));
}

}  // namespace prism::tracing
