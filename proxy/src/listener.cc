#include "listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace prism::proxy {
namespace {

constexpr auto kWarningEvery = std::chrono::seconds(10);

std::string Numeric(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return sa->sa_family == AF_INET6 ? "[" + std::string(host) + "]:" + serv
                                   : std::string(host) + ":" + serv;
}

void SetPort(sockaddr* sa, int port) {
  if (sa->sa_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(sa)->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<sockaddr_in*>(sa)->sin_port = htons(static_cast<uint16_t>(port));
  }
}

// One listening socket on `sa`; -1 and `error` set when it cannot be made.
// `dual_stack`: an IPv6 socket that takes IPv4 too (IPV6_V6ONLY off), as
// gRPC makes for a wildcard address; other IPv6 sockets are IPv6 only, so
// ::1 and 127.0.0.1 can share a port.
int Listen(sockaddr* sa, socklen_t len, bool dual_stack, std::string* error, int* err) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    *error = "socket for " + Numeric(sa, len) + ": " + std::strerror(errno);
    return -1;
  }
  int one = 1, v6only = dual_stack ? 0 : 1;
  // SO_REUSEADDR: a restarted proxy can bind while old connections sit in
  // TIME_WAIT. Not SO_REUSEPORT (gRPC's default): a second proxy on the same
  // port is an error, not a silent share of the connections.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (sa->sa_family == AF_INET6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0 && dual_stack) {
    *err = errno;
    *error = "dual-stack socket for " + Numeric(sa, len) + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  if (bind(fd, sa, len) != 0 || listen(fd, SOMAXCONN) != 0) {
    *err = errno;
    *error = "bind " + Numeric(sa, len) + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                  : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

std::string BoundAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return Numeric(reinterpret_cast<sockaddr*>(&ss), len);
}

bool IsWildcard(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return v4.s_addr == htonl(INADDR_ANY);
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&v6);
}

}  // namespace

std::string EnsureDescriptorsFor(int max_connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return "";
  const rlim_t want = static_cast<rlim_t>(max_connections) + kSpareDescriptors;
  if (rl.rlim_cur >= want) return "";
  const rlim_t old = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = old;
  if (rl.rlim_cur >= want) return "";
  return "limits.max_connections (" + std::to_string(max_connections) + ") needs about " +
         std::to_string(want) + " file descriptors and the limit is " +
         std::to_string(rl.rlim_cur) +
         " (ulimit -n): connections past it wait until descriptors free up";
}

bool OpenConnections::Admit(int fd, std::chrono::steady_clock::time_point now) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  // A remembered entry for this fd number is a socket closed since: the
  // number is this one's now.
  open_.erase(fd);
  if (open_.size() >= limit_ && now - last_prune_ >= kRecheck) {
    last_prune_ = now;
    Prune();
  }
  if (open_.size() >= limit_) return false;
  open_.emplace(fd, Identity{st.st_dev, st.st_ino});
  return true;
}

size_t OpenConnections::Prune() {
  for (auto it = open_.begin(); it != open_.end();) {
    struct stat st;
    const bool same =
        fstat(it->first, &st) == 0 && st.st_dev == it->second.dev && st.st_ino == it->second.ino;
    it = same ? std::next(it) : open_.erase(it);
  }
  return open_.size();
}

absl::StatusOr<std::unique_ptr<TcpListener>> TcpListener::Bind(const std::string& host, int port,
                                                               Options options) {
  if (!options.warn) options.warn = [](std::string_view) {};
  std::vector<int> fds;
  std::string first_error;
  int err = 0;
  auto add = [&](sockaddr* sa, socklen_t len, bool dual_stack) {
    // Port 0 on several addresses: the port the first one got, for all.
    if (port == 0 && !fds.empty()) SetPort(sa, BoundPort(fds.front()));
    std::string error;
    int fd = Listen(sa, len, dual_stack, &error, &err);
    if (fd >= 0) {
      fds.push_back(fd);
    } else if (first_error.empty()) {
      first_error = error;
    }
    return fd >= 0;
  };
  if (IsWildcard(host)) {
    sockaddr_in6 any6{};
    any6.sin6_family = AF_INET6;
    any6.sin6_addr = in6addr_any;
    any6.sin6_port = htons(static_cast<uint16_t>(port));
    if (!add(reinterpret_cast<sockaddr*>(&any6), sizeof(any6), /*dual_stack=*/true) &&
        err != EADDRINUSE && err != EACCES) {
      // No IPv6 here: IPv4 alone, as gRPC does.
      sockaddr_in any4{};
      any4.sin_family = AF_INET;
      any4.sin_addr.s_addr = htonl(INADDR_ANY);
      any4.sin_port = htons(static_cast<uint16_t>(port));
      first_error.clear();
      add(reinterpret_cast<sockaddr*>(&any4), sizeof(any4), false);
    }
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
      return absl::FailedPreconditionError("cannot resolve '" + host + "': " + gai_strerror(rc));
    }
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      add(ai->ai_addr, ai->ai_addrlen, false);
    }
    freeaddrinfo(res);
  }
  if (fds.empty()) {
    return absl::FailedPreconditionError(first_error.empty() ? "no address to listen on"
                                                             : first_error);
  }
  std::vector<std::string> addresses;
  for (int fd : fds) addresses.push_back(BoundAddress(fd));
  const int bound = BoundPort(fds.front());
  return std::unique_ptr<TcpListener>(
      new TcpListener(std::move(fds), bound, std::move(addresses), std::move(options)));
}

TcpListener::TcpListener(std::vector<int> fds, int port, std::vector<std::string> addresses,
                         Options options)
    : fds_(std::move(fds)),
      port_(port),
      addresses_(std::move(addresses)),
      options_(std::move(options)),
      open_(static_cast<size_t>(options_.max_connections)) {}

TcpListener::~TcpListener() { Stop(); }

void TcpListener::Start(HandOver hand_over) {
  if (thread_.joinable() || fds_.empty()) return;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this, h = std::move(hand_over)] { Loop(h); });
}

void TcpListener::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
  for (int fd : fds_) close(fd);
  fds_.clear();
}

void TcpListener::Loop(HandOver hand_over) {
  std::vector<pollfd> polled;
  for (int fd : fds_) polled.push_back({fd, POLLIN, 0});
  polled.push_back({wake_fd_, POLLIN, 0});
  for (;;) {
    if (poll(polled.data(), polled.size(), -1) < 0) {
      if (errno == EINTR) continue;
      options_.warn(std::string("listener: poll failed: ") + std::strerror(errno));
      return;
    }
    if (polled.back().revents != 0) return;  // Stop
    for (size_t i = 0; i + 1 < polled.size(); ++i) {
      if (polled[i].revents != 0) Accept(polled[i].fd, hand_over);
    }
  }
}

void TcpListener::Accept(int listen_fd, const HandOver& hand_over) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd =
        accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    const auto now = std::chrono::steady_clock::now();
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      // Out of file descriptors or memory: the connection waits in the
      // backlog; pause rather than spin on a socket that stays readable.
      if (now - last_error_warning_ >= kWarningEvery) {
        last_error_warning_ = now;
        options_.warn(std::string("cannot accept a connection: ") + std::strerror(errno) +
                      (errno == EMFILE || errno == ENFILE
                           ? " (raise the file-descriptor limit, ulimit -n, or lower "
                             "limits.max_connections)"
                           : ""));
      }
      pollfd wake{wake_fd_, POLLIN, 0};
      poll(&wake, 1, 10);
      return;
    }
    if (!open_.Admit(fd, now)) {
      // Counted (and warned about) before the close the client sees.
      refused_.fetch_add(1, std::memory_order_relaxed);
      ++refused_unwarned_;
      if (now - last_refused_warning_ >= kWarningEvery) {
        last_refused_warning_ = now;
        options_.warn(
            "refused " + std::to_string(refused_unwarned_) + " connection(s), the last from " +
            Numeric(reinterpret_cast<sockaddr*>(&peer), len) + ": limits.max_connections (" +
            std::to_string(open_.limit()) + ") connections are open");
        refused_unwarned_ = 0;
      }
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    accepted_.fetch_add(1, std::memory_order_relaxed);
    hand_over(fd, listen_fd);
  }
}

}  // namespace prism::proxy
