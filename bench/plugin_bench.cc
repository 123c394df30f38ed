// prism_bench_plugin: closed-loop load on prism-plugin-memstore over a Unix
// socket — N concurrent in-flight KeyValue/Get calls from a grpc++ callback
// client — once per tracing configuration of the plugin, side by side:
// calls/s, p50, p99 latency, and the plugin's CPU time per call.
//
//   prism_bench_plugin [--seconds 3] [--concurrency 32] [--value-bytes 100]
//                      [--plugin PATH]
// The client itself does not trace (no traceparent is sent), so the plugin's
// sampler makes the decision for each root SERVER span.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "prism/v1/kv.grpc.pb.h"
#include "testing.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace pt = prism::plugin::testing;

struct Mode {
  const char* name;
  std::vector<std::string> env;
};

// utime + stime of a process, in microseconds.
int64_t ProcessCpuUs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return (utime + stime) * 1000000 / sysconf(_SC_CLK_TCK);
}

class Load {
 public:
  Load(prism::v1::KeyValue::Stub* stub, int concurrency) : stub_(stub), concurrency_(concurrency) {}

  void Run(Clock::time_point measure_from, Clock::time_point stop_at) {
    measure_from_ = measure_from;
    stop_at_ = stop_at;
    in_flight_ = concurrency_;
    for (int i = 0; i < concurrency_; ++i) Issue();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
  }
  std::vector<int64_t>& latencies() { return latencies_; }
  int64_t errors() const { return errors_; }

 private:
  struct Call {
    grpc::ClientContext ctx;
    prism::v1::GetRequest req;
    prism::v1::GetResponse resp;
    Clock::time_point start;
  };

  void Issue() {
    auto* c = new Call;
    c->req.set_namespace_("bench");
    c->req.set_key("key");
    c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c->start = Clock::now();
    stub_->async()->Get(&c->ctx, &c->req, &c->resp, [this, c](grpc::Status s) { Done(c, s); });
  }

  void Done(Call* c, const grpc::Status& s) {
    auto end = Clock::now();
    bool more = end < stop_at_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!s.ok() || !c->resp.found()) {
        errors_++;
      } else if (c->start >= measure_from_ && end <= stop_at_) {
        latencies_.push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(end - c->start).count());
      }
      if (!more && --in_flight_ == 0) cv_.notify_all();
    }
    delete c;
    if (more) Issue();
  }

  prism::v1::KeyValue::Stub* stub_;
  int concurrency_;
  Clock::time_point measure_from_, stop_at_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  int64_t errors_ = 0;
  std::vector<int64_t> latencies_;
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int concurrency = 32;
  int value_bytes = 100;
  std::string plugin = PRISM_MEMSTORE_PLUGIN;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (a == "--concurrency")
      concurrency = std::atoi(argv[i + 1]);
    else if (a == "--value-bytes")
      value_bytes = std::atoi(argv[i + 1]);
    else if (a == "--plugin")
      plugin = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "50", 0);
  std::string dir = pt::MakeTempDir("prism-bench-plugin-");
  std::vector<Mode> modes = {
      {"off (OTEL_SDK_DISABLED=true)", {"OTEL_SDK_DISABLED=true"}},
      {"traceidratio 0.01, file",
       {"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.01",
        "OTEL_TRACES_EXPORTER=file"}},
      {"always_on, file", {"OTEL_TRACES_SAMPLER=always_on", "OTEL_TRACES_EXPORTER=file"}},
      {"always_on, exporter none", {"OTEL_TRACES_SAMPLER=always_on", "OTEL_TRACES_EXPORTER=none"}},
  };
  std::printf("prism_bench_plugin: KeyValue/Get on prism-plugin-memstore over a Unix socket\n");
  std::printf("concurrency %d, %.1f s per mode (+0.5 s warm-up), value %d bytes, %ld CPUs\n\n",
              concurrency, seconds, value_bytes, sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("%-30s %10s %9s %9s %14s %7s\n", "plugin tracing", "calls/s", "p50 us", "p99 us",
              "plugin CPU us/call", "errors");
  for (const auto& mode : modes) {
    std::string sock = dir + "/memstore.sock";
    std::string target = "unix://" + sock;
    std::vector<std::string> env = mode.env;
    env.push_back("PRISM_TRACE_FILE=" + dir + "/traces.jsonl");
    env.push_back("PRISM_LOG_LEVEL=warn");
    pt::ChildProcess p(plugin, {"--listen", target}, env, dir + "/stderr");
    if (!pt::WaitServing(target, std::chrono::seconds(10))) {
      std::fprintf(stderr, "plugin did not start: %s\n", pt::ReadFile(dir + "/stderr").c_str());
      return 1;
    }
    auto stub = prism::v1::KeyValue::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    {
      grpc::ClientContext ctx;
      prism::v1::SetRequest set;
      set.set_namespace_("bench");
      set.set_key("key");
      set.set_value(std::string(value_bytes, 'v'));
      prism::v1::SetResponse resp;
      if (!stub->Set(&ctx, set, &resp).ok()) return 1;
    }
    Load load(stub.get(), concurrency);
    auto start = Clock::now();
    auto measure_from = start + std::chrono::milliseconds(500);
    auto stop_at = measure_from + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
    int64_t cpu0 = 0;
    std::thread cpu_sampler([&] {
      std::this_thread::sleep_until(measure_from);
      cpu0 = ProcessCpuUs(p.pid());
    });
    load.Run(measure_from, stop_at);
    cpu_sampler.join();
    int64_t cpu1 = ProcessCpuUs(p.pid());
    auto& lat = load.latencies();
    std::sort(lat.begin(), lat.end());
    double rate = lat.size() / seconds;
    auto pct = [&](double q) {
      return lat.empty()
                 ? 0.0
                 : lat[std::min(lat.size() - 1, static_cast<size_t>(q * lat.size()))] / 1000.0;
    };
    std::printf("%-30s %10.0f %9.1f %9.1f %14.2f %7ld\n", mode.name, rate, pct(0.50), pct(0.99),
                lat.empty() ? 0.0 : static_cast<double>(cpu1 - cpu0) / lat.size(),
                static_cast<long>(load.errors()));
    std::fflush(stdout);
    p.Signal(SIGTERM);
    p.Wait(std::chrono::seconds(15));
  }
  return 0;
}
