// prism-pubsub-bench: publish throughput through the proxy and end-to-end
// latency to one subscriber, for docs/benchmarks.md ("Publish/subscribe").
// One Subscribe stream; C publisher threads in closed loop (each Publish
// waits for its answer) for D seconds; every message carries its send time
// (steady clock, same machine), so the subscriber measures publish ->
// delivery. Prints one JSON line.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "prism/v1/pubsub.grpc.pb.h"

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return static_cast<double>(v[i]) / 1000.0;  // microseconds
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"prism-pubsub-bench: Publish rate and delivery latency through prism-proxy"};
  std::string addr = "127.0.0.1:6051", ns = "events", subject = "bench";
  double seconds = 2;
  int concurrency = 4;
  size_t size = 64;
  app.add_option("-a,--addr", addr, "proxy address")->capture_default_str();
  app.add_option("-n,--namespace", ns, "namespace")->capture_default_str();
  app.add_option("-s,--subject", subject, "subject")->capture_default_str();
  app.add_option("-d,--seconds", seconds, "publishing time")->capture_default_str()->check(
      CLI::Range(0.05, 3600.0));
  app.add_option("-c,--concurrency", concurrency, "publisher threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--size", size, "message data bytes (at least 8)")
      ->capture_default_str()
      ->check(CLI::Range(8, 1 << 20));
  CLI11_PARSE(app, argc, argv);

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // the subscriber on its own connection
  auto sub_stub = prism::v1::PubSub::NewStub(
      grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext sub_ctx;
  prism::v1::SubscribeRequest sreq;
  sreq.set_namespace_(ns);
  sreq.set_subject(subject);
  auto reader = sub_stub->Subscribe(&sub_ctx, sreq);
  reader->WaitForInitialMetadata();
  if (sub_ctx.GetServerInitialMetadata().count("x-request-id") == 0) {
    grpc::Status s = reader->Finish();
    std::cerr << "prism-pubsub-bench: subscribe failed: " << s.error_message() << "\n";
    return 1;
  }
  std::vector<int64_t> latencies;
  latencies.reserve(1 << 20);
  std::atomic<uint64_t> received{0}, dropped{0};
  std::thread sub_thread([&] {
    prism::v1::Message m;
    while (reader->Read(&m)) {
      int64_t now = NowNs(), sent = 0;
      if (m.data().size() >= sizeof sent) std::memcpy(&sent, m.data().data(), sizeof sent);
      latencies.push_back(now - sent);
      dropped += m.dropped();
      received.fetch_add(1, std::memory_order_release);
    }
  });

  auto pub_channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  std::atomic<uint64_t> published{0}, failed{0};
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(seconds));
  std::vector<std::thread> pubs;
  for (int t = 0; t < concurrency; ++t) {
    pubs.emplace_back([&] {
      auto stub = prism::v1::PubSub::NewStub(pub_channel);
      prism::v1::PublishRequest req;
      req.set_namespace_(ns);
      req.set_subject(subject);
      std::string data(size, 'x');
      while (std::chrono::steady_clock::now() < end) {
        int64_t sent = NowNs();
        std::memcpy(data.data(), &sent, sizeof sent);
        req.set_data(data);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        prism::v1::PublishResponse resp;
        if (stub->Publish(&ctx, req, &resp).ok()) {
          published.fetch_add(1, std::memory_order_relaxed);
        } else {
          failed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& t : pubs) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Core NATS is at most once: wait a moment for the last deliveries.
  for (int i = 0; i < 200 && received.load(std::memory_order_acquire) < published.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  sub_ctx.TryCancel();
  sub_thread.join();
  reader->Finish();
  nlohmann::json out = {{"published", published.load()},
                        {"failed", failed.load()},
                        {"seconds", elapsed},
                        {"publish_per_second", static_cast<double>(published.load()) / elapsed},
                        {"received", received.load()},
                        {"dropped", dropped.load()},
                        {"latency_p50_us", Percentile(latencies, 0.50)},
                        {"latency_p99_us", Percentile(latencies, 0.99)}};
  std::cout << out.dump() << std::endl;
  return failed.load() == 0 ? 0 : 1;
}
