// prism-loadgen: keeps N Get calls in flight for D seconds against a
// prism.v1.KeyValue server (the proxy or a plugin) and prints calls/s, p50
// and p99. grpc++ callback API; no tracing of its own.

#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "prism/v1/kv.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string addr = "127.0.0.1:6051";
  std::string ns = "default";
  std::string key = "loadgen-key";
  std::string token;
  int concurrency = 32;
  int channels = 1;
  double duration_s = 10;
  double warmup_s = 1;
  bool json = false;
  bool set_first = true;
  std::string op = "get";  // get | set (each slot Sets its own key)
  int value_size = 100;    // bytes per Set value
  std::vector<std::pair<std::string, std::string>> metadata;  // sent with every call
};

// A header gRPC accepts from an application: a lower-case token that is not
// reserved ("grpc-..."), and, unless the key ends in "-bin", a printable
// ASCII value. Checked here so a typo is an error message, not a failed call.
std::string MetadataError(const std::string& key, const std::string& value) {
  if (key.empty()) return "empty key";
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return "key '" + key + "': only lower-case letters, digits, '-', '_' and '.'";
  }
  if (key.rfind("grpc-", 0) == 0) return "key '" + key + "' is reserved by gRPC";
  if (key.size() < 4 || key.compare(key.size() - 4, 4, "-bin") != 0) {
    for (char c : value) {
      if (c < 0x20 || c > 0x7e) return "value of '" + key + "': printable ASCII only";
    }
  }
  return "";
}

int64_t ProcessCpuUs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

struct Shared {
  Options o;
  std::vector<std::unique_ptr<prism::v1::KeyValue::Stub>> stubs;
  Clock::time_point measure_from, stop_at;
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> completed{0};  // every call, warm-up included
  std::atomic<int> running{0};
  std::mutex mu;
  std::condition_variable cv;
  std::string first_error;
};

// One in-flight slot: issues a call, records its latency, issues the next.
class Slot {
 public:
  Slot(Shared& s, int index) : s_(s), stub_(*s.stubs[index % s.stubs.size()]) {
    req_.set_namespace_(s.o.ns);
    req_.set_key(s.o.key);
    set_ = s.o.op == "set";
    if (set_) {
      set_req_.set_namespace_(s.o.ns);
      set_req_.set_key(s.o.key + "-" + std::to_string(index));
      set_req_.set_value(std::string(static_cast<size_t>(s.o.value_size), 'v'));
    }
    latencies_ns_.reserve(1 << 16);
  }

  void Start() {
    s_.running.fetch_add(1);
    Issue();
  }

  const std::vector<uint32_t>& latencies() const { return latencies_ns_; }

 private:
  void Issue() {
    ctx_ = std::make_unique<grpc::ClientContext>();
    if (!s_.o.token.empty()) ctx_->AddMetadata("authorization", "Bearer " + s_.o.token);
    for (const auto& [k, v] : s_.o.metadata) ctx_->AddMetadata(k, v);
    ctx_->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    started_ = Clock::now();
    if (set_) {
      stub_.async()->Set(ctx_.get(), &set_req_, &set_resp_, [this](grpc::Status st) { Done(st); });
      return;
    }
    stub_.async()->Get(ctx_.get(), &req_, &resp_, [this](grpc::Status st) { Done(st); });
  }

  void Done(const grpc::Status& st) {
    auto now = Clock::now();
    s_.completed.fetch_add(1, std::memory_order_relaxed);
    if (!st.ok()) {
      if (s_.errors.fetch_add(1) == 0) {
        std::lock_guard<std::mutex> lock(s_.mu);
        s_.first_error = std::to_string(st.error_code()) + ": " + st.error_message();
      }
    } else if (started_ >= s_.measure_from && now <= s_.stop_at) {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count();
      latencies_ns_.push_back(static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX)));
    }
    if (now < s_.stop_at) {
      Issue();
      return;
    }
    if (s_.running.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(s_.mu);
      s_.cv.notify_all();
    }
  }

  Shared& s_;
  prism::v1::KeyValue::Stub& stub_;
  prism::v1::GetRequest req_;
  prism::v1::GetResponse resp_;
  bool set_ = false;
  prism::v1::SetRequest set_req_;
  prism::v1::SetResponse set_resp_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  Clock::time_point started_;
  std::vector<uint32_t> latencies_ns_;
};

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil keeps mutex deadlock detection on, which grpc's mutexes
  // pay for on every lock (GraphCycles in profiles); turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Shared s;
  Options& o = s.o;
  CLI::App app{"prism-loadgen: N concurrent Get calls for D seconds; prints calls/s, p50, p99"};
  app.add_option("-a,--addr", o.addr, "server address")->capture_default_str();
  app.add_option("-n,--namespace", o.ns, "namespace")->capture_default_str();
  app.add_option("-k,--key", o.key, "key to Get")->capture_default_str();
  app.add_option("-t,--token", o.token, "bearer token");
  app.add_option("-c,--concurrency", o.concurrency, "calls in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--channels", o.channels, "gRPC channels (connections)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("-d,--duration", o.duration_s, "seconds measured")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-w,--warmup", o.warmup_s, "seconds of warm-up (not measured)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("!--no-set", o.set_first, "do not Set the key before the run");
  app.add_option("--op", o.op, "get: Get the key; set: each call slot Sets a key of its own")
      ->check(CLI::IsMember({"get", "set"}))
      ->capture_default_str();
  app.add_option("--value-size", o.value_size, "bytes of each Set value (--op set)")
      ->check(CLI::Range(0, 4 * 1024 * 1024))
      ->capture_default_str();
  app.add_flag("--json", o.json, "print one JSON object");
  std::vector<std::string> metadata;
  app.add_option("-m,--metadata", metadata,
                 "KEY=VALUE header sent with every call (repeatable), e.g. a traceparent");
  CLI11_PARSE(app, argc, argv);
  for (const std::string& kv : metadata) {
    size_t eq = kv.find('=');
    std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    std::string err = eq == std::string::npos ? "expected KEY=VALUE" : MetadataError(key, value);
    if (!err.empty()) {
      std::cerr << "prism-loadgen: --metadata '" << kv << "': " << err << "\n";
      return 2;
    }
    o.metadata.emplace_back(std::move(key), std::move(value));
  }

  for (int i = 0; i < o.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per channel
    args.SetInt("prism.loadgen.channel", i);
    s.stubs.push_back(prism::v1::KeyValue::NewStub(
        grpc::CreateCustomChannel(o.addr, grpc::InsecureChannelCredentials(), args)));
  }
  if (o.set_first) {
    grpc::ClientContext ctx;
    if (!o.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    prism::v1::SetRequest req;
    req.set_namespace_(o.ns);
    req.set_key(o.key);
    req.set_value(std::string(64, 'v'));
    prism::v1::SetResponse resp;
    grpc::Status st = s.stubs[0]->Set(&ctx, req, &resp);
    if (!st.ok()) {
      std::cerr << "prism-loadgen: Set failed: " << st.error_code() << " " << st.error_message()
                << "\n";
      return 1;
    }
  }

  auto start = Clock::now();
  const int64_t cpu_start_us = ProcessCpuUs();
  s.measure_from = start + std::chrono::milliseconds(static_cast<int64_t>(o.warmup_s * 1000));
  s.stop_at = s.measure_from + std::chrono::milliseconds(static_cast<int64_t>(o.duration_s * 1000));
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < o.concurrency; ++i) slots.push_back(std::make_unique<Slot>(s, i));
  for (auto& slot : slots) slot->Start();
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait(lock, [&] { return s.running.load() == 0; });
  }
  // The load generator's own CPU per call (warm-up included on both sides):
  // with client and servers on the same cores it is part of every path.
  const double client_cpu_us_per_call =
      static_cast<double>(ProcessCpuUs() - cpu_start_us) / std::max<uint64_t>(1, s.completed);

  std::vector<uint32_t> all;
  for (auto& slot : slots)
    all.insert(all.end(), slot->latencies().begin(), slot->latencies().end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) -> double {
    if (all.empty()) return 0;
    size_t i = std::min(all.size() - 1, static_cast<size_t>(p * all.size()));
    return all[i] / 1e3;
  };
  double rate = all.size() / o.duration_s;
  uint64_t errors = s.errors.load();
  if (o.json) {
    nlohmann::json j = {{"addr", o.addr},
                        {"op", o.op},
                        {"concurrency", o.concurrency},
                        {"channels", o.channels},
                        {"duration_s", o.duration_s},
                        {"calls", all.size()},
                        {"calls_per_sec", rate},
                        {"p50_us", pct(0.50)},
                        {"p90_us", pct(0.90)},
                        {"p99_us", pct(0.99)},
                        {"errors", errors},
                        {"client_cpu_us_per_call", client_cpu_us_per_call}};
    if (errors) j["first_error"] = s.first_error;
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%s: %zu calls in %.1f s, %.0f calls/s, p50 %.1f us, p99 %.1f us, errors %llu\n",
                o.addr.c_str(), all.size(), o.duration_s, rate, pct(0.5), pct(0.99),
                static_cast<unsigned long long>(errors));
    if (errors) std::printf("first error: %s\n", s.first_error.c_str());
  }
  return errors && all.empty() ? 1 : 0;
}
