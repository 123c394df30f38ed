// prism_test_deadline_plugin: a minimal KeyValue server for the proxy's
// end-to-end tests. Get answers found=true with value = the milliseconds left
// until the deadline the call arrived with ("none" without one), so a test
// can see that the caller's deadline travelled through the proxy.
// Usage: prism_test_deadline_plugin --listen ADDRESS [ignored flags...]

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <iostream>

#include "prism/v1/kv.grpc.pb.h"

namespace {

class DeadlineKv final : public prism::v1::KeyValue::Service {
  grpc::Status Get(grpc::ServerContext* ctx, const prism::v1::GetRequest*,
                   prism::v1::GetResponse* resp) override {
    auto left = ctx->deadline() - std::chrono::system_clock::now();
    resp->set_found(true);
    if (left > std::chrono::hours(24 * 365)) {
      resp->set_value("none");
    } else {
      resp->set_value(
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(left).count()));
    }
    return grpc::Status::OK;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0) listen = argv[i + 1];
  }
  if (listen.empty()) {
    std::cerr << "usage: prism_test_deadline_plugin --listen ADDRESS\n";
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  grpc::EnableDefaultHealthCheckService(true);
  DeadlineKv service;
  grpc::ServerBuilder b;
  b.AddListeningPort(listen, grpc::InsecureServerCredentials());
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  if (!server) return 1;
  int sig;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
