// TcpListener and OpenConnections on real sockets: the connection limit at
// its boundary, what a refused client sees, and binding as gRPC binds.
#include "listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>

namespace prism::proxy {
namespace {

using namespace std::chrono_literals;

// A connected socket pair; the test owns both ends.
struct Pair {
  int a = -1, b = -1;
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    a = sv[0];
    b = sv[1];
  }
  ~Pair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
};

TEST(OpenConnections, RefusesTheOneOverTheLimitUntilOneCloses) {
  OpenConnections table(2);
  auto t = std::chrono::steady_clock::time_point() + 1h;
  Pair p1, p2, p3;
  EXPECT_TRUE(table.Admit(p1.a, t));
  EXPECT_TRUE(table.Admit(p2.a, t));
  EXPECT_FALSE(table.Admit(p3.a, t));  // the third, at the limit of 2
  EXPECT_EQ(table.remembered(), 2u);
  // gRPC closes the first; its fd number is taken by something else at once
  // (not a socket handed on), so only the check can tell.
  close(p1.a);
  int other = open("/dev/null", O_RDONLY);
  ASSERT_EQ(other, p1.a);
  p1.a = -1;
  // Within kRecheck of the last check the table is not read again...
  EXPECT_FALSE(table.Admit(p3.a, t + OpenConnections::kRecheck - 1ms));
  // ...after it, the closed one is found and the third admitted.
  EXPECT_TRUE(table.Admit(p3.a, t + OpenConnections::kRecheck));
  EXPECT_EQ(table.remembered(), 2u);
  close(other);
}

TEST(OpenConnections, AReusedFdNumberIsANewConnection) {
  OpenConnections table(1);
  const auto t = std::chrono::steady_clock::time_point() + 1h;
  Pair p1;
  EXPECT_TRUE(table.Admit(p1.a, t));
  const int number = p1.a;
  close(p1.a);
  p1.a = -1;
  Pair p2;  // the lowest free numbers: p1.a's first
  ASSERT_EQ(p2.a, number);
  EXPECT_TRUE(table.Admit(p2.a, t));  // no check needed: that number is this socket now
  EXPECT_EQ(table.remembered(), 1u);
  EXPECT_EQ(table.Prune(), 1u);
  close(p2.a);
  p2.a = -1;
  EXPECT_EQ(table.Prune(), 0u);
}

TEST(OpenConnections, ASocketThatCannotBeStatedIsRefused) {
  OpenConnections table(4);
  EXPECT_FALSE(table.Admit(-1, std::chrono::steady_clock::now()));
  EXPECT_EQ(table.remembered(), 0u);
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// What the client of a refused connection reads: end of stream (0) or a
// reset (-1), at once rather than a hang.
ssize_t ReadOnce(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char c;
  return read(fd, &c, 1);
}

struct Handed {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> fds;
  int Next() {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, 5s, [&] { return !fds.empty(); })) return -1;
    int fd = fds.front();
    fds.pop_front();
    return fd;
  }
};

TEST(TcpListener, HandsOnUpToTheLimitAndRefusesTheRest) {
  std::mutex warn_mu;
  std::vector<std::string> warnings;
  TcpListener::Options o;
  o.max_connections = 2;
  o.warn = [&](std::string_view w) {
    std::lock_guard g(warn_mu);
    warnings.emplace_back(w);
  };
  auto listener = TcpListener::Bind("127.0.0.1", 0, o);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const int port = (*listener)->port();
  ASSERT_GT(port, 0);
  ASSERT_EQ((*listener)->addresses(),
            std::vector<std::string>{"127.0.0.1:" + std::to_string(port)});
  Handed handed;
  (*listener)->Start([&](int fd, int listen_fd) {
    EXPECT_GE(listen_fd, 0);
    EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);  // as gRPC's endpoints need
    std::lock_guard g(handed.mu);
    handed.fds.push_back(fd);
    handed.cv.notify_all();
  });
  int c1 = Connect(port), c2 = Connect(port);
  ASSERT_GE(c1, 0);
  ASSERT_GE(c2, 0);
  int s1 = handed.Next(), s2 = handed.Next();
  ASSERT_GE(s1, 0);
  ASSERT_GE(s2, 0);
  // The third: accepted by the kernel, closed by the listener.
  int c3 = Connect(port);
  ASSERT_GE(c3, 0);
  EXPECT_LE(ReadOnce(c3), 0);
  EXPECT_EQ((*listener)->refused(), 1u);
  EXPECT_EQ((*listener)->accepted(), 2u);
  {
    std::lock_guard g(warn_mu);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0].rfind("refused 1 connection(s), the last from 127.0.0.1:", 0), 0u)
        << warnings[0];
    EXPECT_NE(warnings[0].find(": limits.max_connections (2) connections are open"),
              std::string::npos)
        << warnings[0];
  }
  // The server closes one: a new connection is handed on again (after the
  // recheck interval).
  close(s1);
  std::this_thread::sleep_for(OpenConnections::kRecheck + 5ms);
  int c4 = Connect(port);
  ASSERT_GE(c4, 0);
  int s4 = handed.Next();
  EXPECT_GE(s4, 0);
  EXPECT_EQ((*listener)->accepted(), 3u);
  // After Stop the port takes no connection.
  (*listener)->Stop();
  EXPECT_EQ(Connect(port), -1);
  for (int fd : {c1, c2, c3, c4, s2, s4}) close(fd);
}

TEST(TcpListener, APortInUseIsAnErrorNamingTheAddress) {
  auto first = TcpListener::Bind("127.0.0.1", 0, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  auto second = TcpListener::Bind("127.0.0.1", port, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            "bind 127.0.0.1:" + std::to_string(port) + ": Address already in use");
  auto wildcard = TcpListener::Bind("0.0.0.0", port, {});
  ASSERT_FALSE(wildcard.ok());
  EXPECT_NE(
      wildcard.status().message().find(":" + std::to_string(port) + ": Address already in use"),
      std::string::npos)
      << wildcard.status();
}

TEST(TcpListener, ANameIsEveryAddressItResolvesToOnOnePort) {
  auto l = TcpListener::Bind("localhost", 0, {});
  ASSERT_TRUE(l.ok()) << l.status();
  const std::string port = ":" + std::to_string((*l)->port());
  ASSERT_FALSE((*l)->addresses().empty());
  for (const auto& a : (*l)->addresses()) {
    EXPECT_TRUE(a == "127.0.0.1" + port || a == "[::1]" + port) << a;
  }
}

TEST(TcpListener, AWildcardIsDualStackWhereThereIsIPv6) {
  auto l = TcpListener::Bind("0.0.0.0", 0, {});
  ASSERT_TRUE(l.ok()) << l.status();
  const std::string port = ":" + std::to_string((*l)->port());
  ASSERT_EQ((*l)->addresses().size(), 1u);
  const std::string& a = (*l)->addresses()[0];
  EXPECT_TRUE(a == "[::]" + port || a == "0.0.0.0" + port) << a;
  // Either way an IPv4 client reaches it.
  (*l)->Start([](int fd, int) { close(fd); });
  int c = Connect((*l)->port());
  EXPECT_GE(c, 0);
  if (c >= 0) close(c);
}

TEST(TcpListener, AnUnknownHostIsAnError) {
  auto l = TcpListener::Bind("no-such-host.invalid", 0, {});
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().message().rfind("cannot resolve 'no-such-host.invalid': ", 0), 0u)
      << l.status();
}

// The soft descriptor limit is raised to what max_connections needs, up to
// the hard limit; past that, a warning with the figures.
TEST(EnsureDescriptorsFor, RaisesTheSoftLimitUpToTheHardOne) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_GE(saved.rlim_max, 300u);
  rlimit low = saved;
  low.rlim_cur = 300;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  EXPECT_EQ(EnsureDescriptorsFor(44), "");  // 44 + 256 = 300 fit
  rlimit now{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, 300u);  // untouched
  const int many = 1000;
  const std::string why = EnsureDescriptorsFor(many);
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  if (saved.rlim_max == RLIM_INFINITY || saved.rlim_max >= 1256) {
    EXPECT_EQ(why, "");
    EXPECT_EQ(now.rlim_cur, 1256u);
  } else {
    EXPECT_EQ(now.rlim_cur, saved.rlim_max);
    EXPECT_EQ(why,
              "limits.max_connections (1000) needs about 1256 file descriptors and the limit is " +
                  std::to_string(saved.rlim_max) +
                  " (ulimit -n): connections past it wait until descriptors free up");
  }
  // Over any hard limit there is: the warning.
  const std::string over = EnsureDescriptorsFor(1 << 30);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < (1u << 30)) {
    EXPECT_NE(over.find("needs about 1073742080 file descriptors"), std::string::npos) << over;
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

}  // namespace
}  // namespace prism::proxy
