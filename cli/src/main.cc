// prism: the command-line client. `prism kv get|set|del|exists` against a
// proxy, `prism trace ls|show` over the local trace file, `prism token`.

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "prism/grpc_tracing/carriers.h"
#include "prism/grpc_tracing/semconv.h"
#include "prism/plugin/limits.h"
#include "prism/tracing/carriers.h"
#include "prism/tracing/env.h"
#include "prism/tracing/exporters/file_exporter.h"
#include "prism/tracing/exporters/setup.h"
#include "prism/tracing/global.h"
#include "prism/tracing/ids.h"
#include "prism/v1/kv.grpc.pb.h"
#include "prism/v1/pubsub.grpc.pb.h"
#include "trace_file.h"

namespace pt = prism::tracing;
namespace gt = prism::grpc_tracing;
using nlohmann::json;

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr const char* kDefaultAddr = "127.0.0.1:6051";

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string Sha256Hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return prism::tracing::hex::Encode(d, sizeof d);
}

std::string MetadataValue(const std::multimap<grpc::string_ref, grpc::string_ref>& md,
                          const char* key) {
  auto it = md.find(key);
  return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

struct KvOptions {
  std::string addr, token, token_file, ns = "default", request_id, ca_file, ca_pem;
  double timeout_s = 10;
  bool tls = false, json = false, base64 = false, no_trace = false;
  bool deadline = true;  // false for `prism sub`: it runs until Ctrl-C or --count
};

// A token read from a file or the environment loses one trailing newline
// (LF or CRLF, as `echo` and editors leave them); gRPC refuses control
// characters in metadata, so a stray CR would otherwise fail every call.
std::string StripOneNewline(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

// Why `value` cannot be sent as the gRPC metadata `what` ("" when it can):
// ASCII-only header values may hold printable characters only.
std::string MetadataProblem(const std::string& what, const std::string& value) {
  for (size_t i = 0; i < value.size(); ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    if (c < 0x20 || c > 0x7e) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return what + " contains the byte " + hex + " at offset " + std::to_string(i) +
             "; only printable ASCII characters (0x20-0x7e) can be sent";
    }
  }
  return {};
}

// Reads the file a flag names; false (and the reason on stderr) when it cannot.
bool ReadFlagFile(const char* flag, const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "prism: " << flag << " '" << prism::cli::EscapeNonPrintable(path)
              << "': " << std::strerror(errno) << "\n";
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  out = text.str();
  return true;
}

// Base64 (RFC 4648, with padding) of arbitrary bytes.
std::string Base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

bool IsUtf8(const std::string& s) {
  // nlohmann::json's own check: dump() throws on invalid UTF-8 in strict mode.
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

// The --json shape of a value (docs/quickstart.md): text when it is UTF-8,
// base64 when not or when --base64 asks; `value_encoding` says which.
void PutValue(nlohmann::json& out, const std::string& value, bool force_base64) {
  bool text = !force_base64 && IsUtf8(value);
  out["value"] = text ? value : Base64(value);
  out["value_encoding"] = text ? "utf-8" : "base64";
}

// One traced call to the proxy: a CLIENT span (the root of the trace), its
// context in the metadata, the ids from the response metadata.
class KvCall {
 public:
  KvCall(const KvOptions& o, const std::string& method_path) : o_(o), method_(method_path) {
    if (!o.no_trace) {
      pt::ExporterDefaults d;
      d.traces_exporter = "file";
      d.add_otlp_when_endpoint_set = true;
      // d.trace_file empty: the exporter resolves the path by the shared rule.
      d.log_diagnostics_at_shutdown = false;
      provider_ = pt::InitTracingFromEnvironment("prism-cli", d);
    }
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (o.tls) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = o.ca_pem;  // read and checked before the call (main)
      creds = grpc::SslCredentials(ssl);
    } else {
      creds = grpc::InsecureChannelCredentials();
    }
    // Responses as large as the API allows (a 4 MiB value is more than
    // gRPC's default 4 MiB receive limit once framed).
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(prism::plugin::kMaxMessageBytes);
    channel_ = grpc::CreateCustomChannel(o.addr, creds, args);
    stub_ = prism::v1::KeyValue::NewStub(channel_);
    pubsub_ = prism::v1::PubSub::NewStub(channel_);
    const auto deadline = std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<long long>(o.timeout_s * 1000));
    if (o.deadline) ctx_.set_deadline(deadline);
    if (!o.token.empty()) ctx_.AddMetadata("authorization", "Bearer " + o.token);
    if (!o.request_id.empty()) ctx_.AddMetadata("x-request-id", o.request_id);
    pt::Tracer tracer = pt::GetTracer("prism-cli");
    pt::StartSpanOptions so;
    so.kind = pt::SpanKind::kClient;
    so.root = true;
    gt::MethodName m = gt::SplitMethod(method_);
    span_ = tracer.StartSpan(m.full, std::move(so));
    if (span_.IsRecording()) {
      for (auto& kv : gt::RpcStartAttributes(m, gt::ParseTarget(o.addr))) {
        span_.SetAttribute(kv.key, std::move(kv.value));
      }
      span_.SetAttribute("prism.namespace", o.ns);
    }
    gt::ClientContextCarrier carrier(ctx_);
    pt::GlobalPropagator()->Inject(pt::Context(span_.context()), carrier);
    Connect(tracer, deadline);
  }

  // The CLI's channel is new, so its first call pays for TCP (and TLS) setup
  // and the HTTP/2 handshake: often most of the CLI's span. Connecting
  // first, in a span of its own, shows that time in the waterfall instead
  // of an unexplained gap before the proxy's span. A failure is left for the
  // call to report: it fails at once on a channel that could not connect,
  // exactly as it would have without this step.
  void Connect(const pt::Tracer& tracer, std::chrono::system_clock::time_point deadline) {
    pt::StartSpanOptions so;
    so.parent = span_.context();
    pt::Span connect = tracer.StartSpan("prism.connect", std::move(so));
    grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
           state != GRPC_CHANNEL_SHUTDOWN) {
      if (!channel_->WaitForStateChange(state, deadline)) break;  // deadline
      state = channel_->GetState(/*try_to_connect=*/true);
    }
    if (!connect.IsRecording()) return;
    gt::Endpoint server = gt::ParseTarget(o_.addr);
    if (!server.address.empty()) connect.SetAttribute(gt::attr::kServerAddress, server.address);
    if (server.port > 0) connect.SetAttribute(gt::attr::kServerPort, int64_t{server.port});
    if (state != GRPC_CHANNEL_READY) {
      connect.SetStatus(pt::StatusCode::kError,
                        (state == GRPC_CHANNEL_CONNECTING ? "deadline exceeded connecting to "
                                                          : "could not connect to ") +
                            o_.addr);
    }
  }

  // After the output, so an unreachable collector never holds back the
  // answer, and bounded: the local trace file is written at once, and an
  // OTLP export that has not succeeded within kExportBound (a collector that
  // refuses connections is retried with backoff) is abandoned with an error
  // on stderr rather than keeping the command waiting.
  void FlushTraces() {
    static constexpr std::chrono::seconds kExportBound{2};
    if (provider_) provider_->Shutdown(kExportBound);
  }

  grpc::ClientContext& ctx() { return ctx_; }
  prism::v1::KeyValue::Stub& stub() { return *stub_; }
  prism::v1::PubSub::Stub& pubsub() { return *pubsub_; }
  const pt::SpanContext& span_context() const { return span_.context(); }

  // Ends the span, prints the result (or the error) and the trace id, then
  // exports the spans; returns the exit code.
  int Finish(const grpc::Status& status, json result, const std::string& text) {
    gt::SetRpcStatus(span_, status, /*server_side=*/false);
    if (!status.ok() && span_.IsRecording()) {
      span_.RecordException("grpc." + std::string(gt::StatusCodeName(status.error_code())),
                            status.error_message());
    }
    std::string trace_id = MetadataValue(ctx_.GetServerInitialMetadata(), "x-trace-id");
    if (trace_id.empty()) trace_id = MetadataValue(ctx_.GetServerTrailingMetadata(), "x-trace-id");
    std::string request_id = MetadataValue(ctx_.GetServerInitialMetadata(), "x-request-id");
    if (request_id.empty()) {
      request_id = MetadataValue(ctx_.GetServerTrailingMetadata(), "x-request-id");
    }
    if (trace_id.empty() && span_.context().IsValid() && span_.context().IsSampled())
      trace_id = span_.context().trace_id().ToHex();  // e.g. the proxy was unreachable
    if (span_.IsRecording()) span_.SetAttribute("prism.request_id", request_id);
    span_.End();
    if (o_.json) {
      json out = status.ok() ? result : json::object();
      out["ok"] = status.ok();
      if (!status.ok()) {
        out["error"] = {{"code", gt::StatusCodeName(status.error_code())},
                        {"message", status.error_message()}};
      }
      out["trace_id"] = trace_id;
      out["request_id"] = request_id;
      // Never throws: every value in `out` is valid UTF-8 or replaced.
      std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
      FlushTraces();
      return status.ok() ? 0 : kExitFailure;
    }
    if (status.ok()) {
      std::cout << text << std::flush;
    } else {
      // The message may echo what a client sent: escaped for the terminal.
      std::cerr << "prism: " << gt::StatusCodeName(status.error_code()) << ": "
                << prism::cli::EscapeNonPrintable(status.error_message()) << "\n";
    }
    if (!trace_id.empty()) {
      std::cerr << "trace " << trace_id << "   (prism trace show " << trace_id.substr(0, 8)
                << ")\n";
    }
    FlushTraces();
    return status.ok() ? 0 : kExitFailure;
  }

 private:
  const KvOptions& o_;
  std::string method_;
  std::shared_ptr<pt::TracerProvider> provider_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<prism::v1::KeyValue::Stub> stub_;
  std::unique_ptr<prism::v1::PubSub::Stub> pubsub_;
  grpc::ClientContext ctx_;
  pt::Span span_;
};

std::string Printable(const std::string& v) {
  return v + (v.empty() || v.back() != '\n' ? "\n" : "");
}

// The connection options of `kv`, `pub` and `sub`.
void AddCallOptions(CLI::App* cmd, KvOptions& o) {
  cmd->add_option("-a,--addr", o.addr, "proxy address (env PRISM_ADDR)")->capture_default_str();
  cmd->add_option("-t,--token", o.token, "access token (env PRISM_TOKEN)");
  cmd->add_option("--token-file", o.token_file,
                  "read the access token from FILE (one trailing newline is dropped)");
  cmd->add_option("--timeout", o.timeout_s, "deadline in seconds")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            char* end = nullptr;
            double d = std::strtod(v.c_str(), &end);
            return !v.empty() && *end == '\0' && d > 0 && d <= 86400
                       ? std::string()
                       : "must be a number of seconds above 0 and at most 86400, got '" + v + "'";
          },
          "SECONDS"));
  cmd->add_option("--request-id", o.request_id, "x-request-id to send");
  cmd->add_flag("--tls", o.tls, "use TLS");
  cmd->add_option("--ca-file", o.ca_file, "PEM root certificates for --tls");
  cmd->add_flag("--json", o.json, "print JSON");
  cmd->add_flag("--no-trace", o.no_trace, "do not write a client span");
}

// Checks and completes the options after parsing: 0, or the exit code.
int PrepareCallOptions(KvOptions& o) {
  if (o.addr.empty()) {
    std::cerr << "prism: --addr is empty\n";
    return kExitUsage;
  }
  if (!o.token_file.empty()) {
    if (!ReadFlagFile("--token-file", o.token_file, o.token)) return kExitUsage;
    o.token = StripOneNewline(o.token);
  }
  if (!o.ca_file.empty() && !o.tls) {
    std::cerr << "prism: --ca-file needs --tls (without it the call would go out in plain text)\n";
    return kExitUsage;
  }
  if (!o.ca_file.empty()) {
    if (!ReadFlagFile("--ca-file", o.ca_file, o.ca_pem)) return kExitUsage;
    if (o.ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      std::cerr << "prism: --ca-file '" << prism::cli::EscapeNonPrintable(o.ca_file)
                << "': no PEM certificate in it\n";
      return kExitUsage;
    }
  }
  // gRPC aborts the process on a header value it cannot send: refuse them here.
  for (const auto& [what, value] : {std::pair<std::string, const std::string&>{"--addr", o.addr},
                                    {"the token", o.token},
                                    {"--request-id", o.request_id}}) {
    if (std::string why = MetadataProblem(what, value); !why.empty()) {
      std::cerr << "prism: " << why << "\n";
      return kExitUsage;
    }
  }
  return 0;
}

// `prism sub`: one Subscribe stream until Ctrl-C (SIGINT/SIGTERM cancel
// it) or --count messages. Each message gets a CONSUMER span whose parent is
// the context it carries (its publisher's trace), and its trace id printed.
int Subscribe(KvOptions& o, const std::string& subject, const std::string& group, uint64_t count) {
  o.deadline = false;
  // Blocked before gRPC starts its threads, so only the waiter takes them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto call = std::make_shared<KvCall>(o, "/prism.v1.PubSub/Subscribe");
  auto stopped = std::make_shared<std::atomic<bool>>(false);
  // Detached: it may still wait in sigwait when --count ends the command.
  std::thread([stop, call, stopped] {
    int sig = 0;
    sigwait(&stop, &sig);
    stopped->store(true);
    call->ctx().TryCancel();
  }).detach();

  prism::v1::SubscribeRequest req;
  req.set_namespace_(o.ns);
  req.set_subject(subject);
  req.set_queue_group(group);
  auto reader = call->pubsub().Subscribe(&call->ctx(), req);
  reader->WaitForInitialMetadata();
  // Response headers come once the backend confirmed the subscription; an
  // error has none (trailers only).
  if (!MetadataValue(call->ctx().GetServerInitialMetadata(), "x-request-id").empty()) {
    if (o.json) {
      std::cout << json{{"subscribed", subject}, {"namespace", o.ns}}.dump() << std::endl;
    } else {
      std::cerr << "subscribed to " << subject << " in " << o.ns << " (Ctrl-C to stop)\n";
    }
  }
  pt::Tracer tracer = pt::GetTracer("prism-cli");
  prism::v1::Message m;
  uint64_t received = 0;
  while (reader->Read(&m)) {
    pt::Context parent;
    if (!m.traceparent().empty()) {
      std::map<std::string, std::string> fields{{"traceparent", m.traceparent()}};
      if (!m.tracestate().empty()) fields["tracestate"] = m.tracestate();
      pt::MapCarrier carrier(fields);
      parent = pt::GlobalPropagator()->Extract(carrier, pt::Context());
    }
    pt::StartSpanOptions so;
    so.kind = pt::SpanKind::kConsumer;
    so.parent = parent.span_context();
    so.root = !parent.span_context().IsValid();
    if (call->span_context().IsValid()) so.links.push_back(pt::Link{call->span_context(), {}, 0});
    // Temporary (_INBOX.) subjects stay out of span names, as in the plugin.
    const bool temporary = m.subject().rfind("_INBOX.", 0) == 0;
    pt::Span span =
        tracer.StartSpan(temporary ? "process" : "process " + m.subject(), std::move(so));
    if (span.IsRecording()) {
      span.SetAttribute("messaging.system", "nats");
      span.SetAttribute("messaging.operation.type", "process");
      span.SetAttribute("messaging.operation.name", "process");
      span.SetAttribute("messaging.destination.name", m.subject());
      span.SetAttribute("messaging.message.body.size", static_cast<int64_t>(m.data().size()));
      if (!group.empty()) span.SetAttribute("messaging.consumer.group.name", group);
      span.SetAttribute("prism.namespace", o.ns);
    }
    const std::string trace_id =
        parent.span_context().IsValid() ? parent.span_context().trace_id().ToHex() : "";
    if (o.json) {
      json line = {{"subject", m.subject()},
                   {"trace_id", trace_id},
                   {"dropped", m.dropped()},
                   {"dropped_total", m.dropped_total()}};
      bool text = !o.base64 && IsUtf8(m.data());
      line["data"] = text ? m.data() : Base64(m.data());
      line["data_encoding"] = text ? "utf-8" : "base64";
      std::cout << line.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
    } else {
      std::cout << prism::cli::EscapeNonPrintable(m.subject()) << ": "
                << prism::cli::EscapeNonPrintable(m.data()) << "   (trace "
                << (trace_id.empty() ? "none" : trace_id);
      if (m.dropped() > 0) std::cout << "; " << m.dropped() << " dropped before it";
      std::cout << ")" << std::endl;
    }
    span.End();
    if (count > 0 && ++received >= count) break;
  }
  if (count > 0 && received >= count) call->ctx().TryCancel();
  grpc::Status s = reader->Finish();
  if (s.error_code() == grpc::StatusCode::CANCELLED &&
      (stopped->load() || (count > 0 && received >= count))) {
    s = grpc::Status::OK;  // ended by the user or by --count, not by a failure
  }
  return call->Finish(s, json{{"received", received}}, "");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"prism: client for prism-proxy and the local trace file"};
  app.require_subcommand(1);

  // ---- kv
  KvOptions kv;
  kv.addr = EnvOr("PRISM_ADDR", kDefaultAddr);
  kv.token = StripOneNewline(EnvOr("PRISM_TOKEN", ""));
  auto* kv_cmd = app.add_subcommand("kv", "key-value calls through the proxy");
  kv_cmd->require_subcommand(1);
  AddCallOptions(kv_cmd, kv);
  kv_cmd->add_option("-n,--namespace", kv.ns, "namespace")->capture_default_str();
  kv_cmd->add_flag("--base64", kv.base64,
                   "with --json: the value always as base64 (else base64 only when not UTF-8)");
  std::string key, value;
  auto* get = kv_cmd->add_subcommand("get", "print the value of KEY");
  get->add_option("key", key, "key")->required();
  auto* set = kv_cmd->add_subcommand("set", "set KEY to VALUE");
  set->add_option("key", key, "key")->required();
  set->add_option("value", value, "value")->required();
  auto* del = kv_cmd->add_subcommand("del", "delete KEY");
  del->add_option("key", key, "key")->required();
  auto* exists = kv_cmd->add_subcommand("exists", "does KEY exist?");
  exists->add_option("key", key, "key")->required();

  // ---- pub / sub
  KvOptions ps;
  ps.addr = kv.addr;
  ps.token = kv.token;
  std::string subject, message, queue_group;
  uint64_t count = 0;
  auto* pub_cmd = app.add_subcommand("pub", "publish MESSAGE to SUBJECT in namespace NS");
  AddCallOptions(pub_cmd, ps);
  pub_cmd->add_option("namespace", ps.ns, "namespace (NS)")->required();
  pub_cmd->add_option("subject", subject, "subject, e.g. orders.created")->required();
  pub_cmd->add_option("message", message, "the message data")->required();
  auto* sub_cmd = app.add_subcommand(
      "sub", "print the messages published to SUBJECT in namespace NS, until Ctrl-C or --count");
  AddCallOptions(sub_cmd, ps);
  sub_cmd->add_option("namespace", ps.ns, "namespace (NS)")->required();
  sub_cmd->add_option("subject", subject, "subject; '*' matches a token, '>' the rest")->required();
  sub_cmd->add_option("--count", count, "stop after N messages (0: until Ctrl-C)")
      ->capture_default_str();
  sub_cmd->add_option("--queue", queue_group,
                      "queue group: the subscribers of one group share the messages");
  sub_cmd->add_flag("--base64", ps.base64,
                    "with --json: the data always as base64 (else base64 only when not UTF-8)");

  // ---- trace
  std::string trace_path = pt::ResolveTraceFilePath();  // what the exporters write
  auto* trace_cmd = app.add_subcommand("trace", "traces in the local trace file");
  trace_cmd->require_subcommand(1);
  trace_cmd
      ->add_option("-f,--file", trace_path,
                   "trace file (env PRISM_TRACE_FILE, else $PRISM_DATA_DIR/traces.jsonl)")
      ->capture_default_str();
  bool trace_json = false;
  size_t limit = 20;
  auto* ls = trace_cmd->add_subcommand("ls", "list recent traces");
  ls->add_option("-l,--limit", limit, "how many of the most recent (0: all)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos
                       ? std::string()
                       : "must be a whole number >= 0 (0: all), got '" + v + "'";
          },
          "N"));
  ls->add_flag("--json", trace_json, "print JSON");
  std::string trace_id;
  prism::cli::WaterfallOptions wf;
  auto* show = trace_cmd->add_subcommand("show", "draw a trace as a waterfall");
  show->add_option("id", trace_id, "trace id or a unique prefix")->required();
  show->add_flag("--json", trace_json, "print JSON");
  show->add_flag("-v,--attributes", wf.attributes, "print span ids, attributes and events");
  show->add_option("--width", wf.bar_width, "bar width")
      ->capture_default_str()
      ->check(CLI::Range(10, 400));

  // ---- token
  auto* token_cmd = app.add_subcommand("token", "access tokens for the proxy configuration");
  token_cmd->require_subcommand(1);
  auto* token_new = token_cmd->add_subcommand("new", "generate a token and print its hash");
  std::string token_name = "app";
  token_new->add_option("--name", token_name, "token name for the YAML snippet")
      ->capture_default_str();
  auto* token_hash = token_cmd->add_subcommand("hash", "print the SHA-256 of a token");
  std::string token_value;
  token_hash->add_option("token", token_value, "the token (read from stdin when omitted)");

  // Options of `kv` and `trace` may also follow their subcommands
  // (`prism kv get KEY --namespace orders`).
  for (auto* sub : {get, set, del, exists, ls, show}) sub->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  if (kv_cmd->parsed()) {
    if (int rc = PrepareCallOptions(kv); rc != 0) return rc;
    // protobuf strings: invalid UTF-8 would be refused by the proxy (and
    // logged by libprotobuf on the way out).
    if (!IsUtf8(kv.ns) || !IsUtf8(key)) {
      std::cerr << "prism: " << (IsUtf8(kv.ns) ? "KEY" : "--namespace")
                << " is not valid UTF-8 (namespaces and keys are text; values may be any bytes)\n";
      return kExitUsage;
    }
    if (get->parsed()) {
      KvCall call(kv, "/prism.v1.KeyValue/Get");
      prism::v1::GetRequest req;
      req.set_namespace_(kv.ns);
      req.set_key(key);
      prism::v1::GetResponse resp;
      grpc::Status s = call.stub().Get(&call.ctx(), req, &resp);
      json result = {{"found", resp.found()}};
      if (resp.found()) PutValue(result, resp.value(), kv.base64);
      return call.Finish(s, std::move(result),
                         resp.found() ? Printable(resp.value()) : "(not found)\n");
    }
    if (set->parsed()) {
      KvCall call(kv, "/prism.v1.KeyValue/Set");
      prism::v1::SetRequest req;
      req.set_namespace_(kv.ns);
      req.set_key(key);
      req.set_value(value);
      prism::v1::SetResponse resp;
      grpc::Status s = call.stub().Set(&call.ctx(), req, &resp);
      return call.Finish(s, json::object(), "OK\n");
    }
    if (del->parsed()) {
      KvCall call(kv, "/prism.v1.KeyValue/Delete");
      prism::v1::DeleteRequest req;
      req.set_namespace_(kv.ns);
      req.set_key(key);
      prism::v1::DeleteResponse resp;
      grpc::Status s = call.stub().Delete(&call.ctx(), req, &resp);
      return call.Finish(s, {{"deleted", resp.deleted()}},
                         resp.deleted() ? "deleted\n" : "(not found, nothing deleted)\n");
    }
    if (exists->parsed()) {
      KvCall call(kv, "/prism.v1.KeyValue/Exists");
      prism::v1::ExistsRequest req;
      req.set_namespace_(kv.ns);
      req.set_key(key);
      prism::v1::ExistsResponse resp;
      grpc::Status s = call.stub().Exists(&call.ctx(), req, &resp);
      return call.Finish(s, {{"exists", resp.exists()}}, resp.exists() ? "true\n" : "false\n");
    }
  }

  if (pub_cmd->parsed() || sub_cmd->parsed()) {
    if (int rc = PrepareCallOptions(ps); rc != 0) return rc;
    if (!IsUtf8(ps.ns) || !IsUtf8(subject) || !IsUtf8(queue_group)) {
      std::cerr << "prism: NS, SUBJECT and --queue must be valid UTF-8\n";
      return kExitUsage;
    }
    if (pub_cmd->parsed()) {
      prism::v1::PublishRequest req;
      req.set_namespace_(ps.ns);
      req.set_subject(subject);
      req.set_data(message);
      KvCall call(ps, "/prism.v1.PubSub/Publish");
      prism::v1::PublishResponse resp;
      return call.Finish(call.pubsub().Publish(&call.ctx(), req, &resp), json::object(),
                         "published\n");
    }
    return Subscribe(ps, subject, queue_group, count);
  }

  if (trace_cmd->parsed()) {
    // `show` needs only the lines that mention its (lower-case hex) id.
    const std::string filter = show->parsed() ? prism::tracing::env::ToLower(trace_id) : "";
    auto file = prism::cli::TraceFile::Load(trace_path, filter, /*details=*/show->parsed());
    if (!file.ok()) {
      std::cerr << "prism: " << prism::cli::EscapeNonPrintable(std::string(file.status().message()))
                << "\n";
      return kExitFailure;
    }
    for (const auto& w : file->warnings()) {
      std::cerr << "prism: warning: " << prism::cli::EscapeNonPrintable(w) << "\n";
    }
    if (ls->parsed()) {
      auto list = file->Summaries();
      if (limit == 0) limit = list.size();  // 0: all
      if (trace_json) {
        std::cout
            << prism::cli::ListJson(list, limit).dump(2, ' ', false, json::error_handler_t::replace)
            << "\n";
      } else {
        prism::cli::RenderList(list, limit, std::cout);
      }
      return 0;
    }
    if (show->parsed()) {
      auto id = file->Resolve(trace_id);
      if (!id.ok()) {
        std::cerr << "prism: " << prism::cli::EscapeNonPrintable(std::string(id.status().message()))
                  << "\n";
        return id.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
      }
      const auto* spans = file->Spans(*id);
      if (trace_json) {
        std::cout << prism::cli::WaterfallJson(*id, *spans)
                         .dump(2, ' ', false, json::error_handler_t::replace)
                  << "\n";
      } else {
        wf.color = isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR");
        prism::cli::RenderWaterfall(*id, *spans, wf, std::cout);
      }
      return 0;
    }
  }

  if (token_cmd->parsed()) {
    if (token_new->parsed()) {
      unsigned char bytes[32];
      if (RAND_bytes(bytes, sizeof bytes) != 1) {
        std::cerr << "prism: no randomness available\n";
        return kExitFailure;
      }
      std::string token = "prism_" + prism::tracing::hex::Encode(bytes, sizeof bytes);
      std::cout << "token:  " << token << "\n"
                << "sha256: " << Sha256Hex(token) << "\n\n"
                << "# in the proxy configuration (the token itself is never stored):\n"
                << "tokens:\n"
                << "  - name: " << token_name << "\n"
                << "    sha256: " << Sha256Hex(token) << "\n"
                << "    rights: {\"*\": [read, write, publish, subscribe]}\n";
      return 0;
    }
    if (token_hash->parsed()) {
      if (token_value.empty()) {
        std::getline(std::cin, token_value);
        token_value = StripOneNewline(token_value + "\n");  // getline left a CR of a CRLF
      }
      if (token_value.empty()) {
        std::cerr << "prism: no token given\n";
        return kExitUsage;
      }
      std::cout << Sha256Hex(token_value) << "\n";
      return 0;
    }
  }
  return kExitUsage;
}
