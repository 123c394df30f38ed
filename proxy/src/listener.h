#pragma once
// TcpListener: the proxy's TCP listening sockets. gRPC's own listener takes
// every connection it is offered, and each connection may hold
// max_concurrent_streams streams that send headers and then nothing (~13 KiB
// each, before any of the proxy's code runs). This one accepts the
// connections itself and hands each to the gRPC server (ServerBuilder's
// external connection acceptor: TLS or not, the peer address as usual)
// unless `max_connections` of those it handed on are still open; then it
// closes the new one at once (the client sees UNAVAILABLE) and counts it.
// Together the two limits bound that memory at
// max_connections x max_concurrent_streams x ~13 KiB (docs/config.md,
// "Memory under abuse").
//
//   ASSIGN_OR_RETURN(auto listener, TcpListener::Bind("0.0.0.0", 6051, {}));
//   auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
//       grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, creds);
//   auto server = builder.BuildAndStart();
//   listener->Start([&](int fd, int listen_fd) { /* acceptor->HandleNewConnection */ });
//   ...
//   listener->Stop();  // before server->Shutdown(): no connection is handed on after
//
// Binding follows gRPC's rules, so `listen` means what it meant: a wildcard
// host (0.0.0.0 or ::) is one dual-stack [::] socket (0.0.0.0 where there is
// no IPv6); a name is every address it resolves to, port 0 the same free port
// for all of them; success if at least one binds.
//
// Thread-safety: Bind, Start, Stop and the destructor from one thread; the
// accept loop runs on a thread of its own; the counters from any thread.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace prism::proxy {

// The sockets handed on that may still be open. gRPC says nothing when it
// closes a connection, so each one is remembered by (fd, device, inode), and
// an entry whose fd no longer names that socket (fstat) is a connection
// gRPC has closed. The fd number may have been closed and reused by another
// thread meanwhile (ThreadSanitizer reports that as a race on the fd):
// fstat only reads, and the identity, not the number, decides. Not
// thread-safe: the accept loop owns it.
class OpenConnections {
 public:
  explicit OpenConnections(size_t limit) : limit_(limit) {}
  // Whether the accepted socket `fd` may be handed on: true (and `fd`
  // remembered) when fewer than `limit` remembered sockets are open. At the
  // limit the remembered ones are checked again (O(limit) fstat calls) at
  // most once per kRecheck, so a flood of refused connections costs no more.
  bool Admit(int fd, std::chrono::steady_clock::time_point now);
  // Forgets the sockets that are closed; returns how many stay.
  size_t Prune();
  size_t remembered() const { return open_.size(); }
  size_t limit() const { return limit_; }

  static constexpr std::chrono::milliseconds kRecheck{10};

 private:
  struct Identity {
    dev_t dev;
    ino_t ino;
  };
  size_t limit_;
  std::unordered_map<int, Identity> open_;
  std::chrono::steady_clock::time_point last_prune_{};  // the epoch: never (boot was earlier)
};

// Each open connection is a file descriptor. Raises the soft RLIMIT_NOFILE,
// if it is lower, to max_connections + kSpareDescriptors (the proxy's own:
// plugin channels, trace file, listeners), at most to the hard limit; the
// result is a warning to log when even that is too low, else "".
inline constexpr int kSpareDescriptors = 256;
std::string EnsureDescriptorsFor(int max_connections);

class TcpListener {
 public:
  struct Options {
    int max_connections = 256;  // limits.max_connections
    // Warnings (refused connections, accept errors), at most one per 10 s
    // per kind. Never null after Bind.
    std::function<void(std::string_view)> warn;
  };
  // Hands an accepted connection on; the callee owns `fd` from then on.
  using HandOver = std::function<void(int fd, int listen_fd)>;

  // Binds and listens on `host`:`port` (port 0: a free one). The error
  // names the address that failed and why ("bind 127.0.0.1:6051: Address
  // already in use").
  static absl::StatusOr<std::unique_ptr<TcpListener>> Bind(const std::string& host, int port,
                                                           Options options);
  ~TcpListener();  // Stop()

  // The port bound (the chosen one for port 0).
  int port() const { return port_; }
  // The addresses bound, numeric ("127.0.0.1:6051", "[::]:6051").
  const std::vector<std::string>& addresses() const { return addresses_; }

  // Starts accepting on a thread of its own; `hand_over` runs on it.
  void Start(HandOver hand_over);
  // Stops accepting and closes the listening sockets (new connections are
  // then refused by the kernel). Connections handed on are not touched.
  // Idempotent.
  void Stop();

  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  TcpListener(std::vector<int> fds, int port, std::vector<std::string> addresses, Options options);
  void Loop(HandOver hand_over);
  void Accept(int listen_fd, const HandOver& hand_over);

  std::vector<int> fds_;
  int port_;
  std::vector<std::string> addresses_;
  Options options_;
  int wake_fd_ = -1;  // eventfd: Stop wakes the loop
  OpenConnections open_;
  std::thread thread_;
  std::atomic<uint64_t> accepted_{0}, refused_{0};
  // Paced warnings (accept loop only).
  std::chrono::steady_clock::time_point last_refused_warning_{}, last_error_warning_{};
  uint64_t refused_unwarned_ = 0;
};

}  // namespace prism::proxy
