// Hardening tests (issue #17), through the real binaries: what a hostile
// client, another local user or an overload can do.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "auth.h"
#include "prism/plugin/limits.h"
#include "prism/v1/kv.grpc.pb.h"
#include "support.h"

namespace prism::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Permission bits of `path` (-1 when it does not exist).
int Mode(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

std::string Octal(int mode) {
  char b[16];
  std::snprintf(b, sizeof b, "%04o", mode);
  return b;
}

// Restores the test's umask when a test changed it.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t m) : old_(umask(m)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  mode_t old_;
};

// ---------------------------------------------------------------------------
// Data exposure

// A fresh embedded default, started with the permissive umask most shells
// have (022): the data directory is 0700, the database, its WAL files and
// the trace file 0600, and so is the CLI's own trace file.
TEST(Hardening, FreshEmbeddedDefaultIsPrivate) {
  ScopedUmask permissive(022);
  std::string dir = MakeTempDir();
  std::string data = dir + "/data";  // the harness's PRISM_DATA_DIR; does not exist yet
  // An empty PRISM_TRACE_FILE: the default, <data_dir>/traces.jsonl.
  Proxy proxy(dir, "", {}, {{"PRISM_TRACE_FILE", ""}});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  std::string cli_traces = dir + "/cli/traces.jsonl";  // directory created by the CLI
  auto set = RunProcess(CliBinary(), {"kv", "set", "k", "v", "--addr", proxy.address()},
                        {{"PRISM_TRACE_FILE", cli_traces}});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  ASSERT_EQ(proxy.Stop(), 0);
  struct Want {
    std::string path;
    int mode;
  } wants[] = {
      {data, 0700},         {data + "/prism.db", 0600}, {data + "/traces.jsonl", 0600},
      {dir + "/cli", 0700}, {cli_traces, 0600},
  };
  for (const auto& w : wants) {
    EXPECT_EQ(Octal(Mode(w.path)), Octal(w.mode)) << w.path;
  }
  EXPECT_EQ(ReadFile(proxy.stderr_path()).find("accessible by other users"), std::string::npos);
}

// -wal and -shm exist only while SQLite has the database open: checked on a
// running proxy. A Unix socket the proxy listens on is private too.
TEST(Hardening, WalFilesAndListenSocketArePrivate) {
  ScopedUmask permissive(022);
  std::string dir = MakeTempDir();
  std::string data = dir + "/data";
  std::string sock = dir + "/proxy.sock";
  Proxy proxy(dir, "", {"--listen", "unix://" + sock});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto set = RunProcess(CliBinary(), {"kv", "set", "k", "v", "--addr", "unix://" + sock},
                        {{"PRISM_TRACE_FILE", dir + "/cli.jsonl"}});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(Octal(Mode(data + "/prism.db-wal")), "0600");
  EXPECT_EQ(Octal(Mode(data + "/prism.db-shm")), "0600");
  EXPECT_EQ(Octal(Mode(sock) & 077), "0000") << Octal(Mode(sock));
}

// A data directory that exists and is group/world accessible is used, with
// a warning that names it and its mode.
TEST(Hardening, WarnsAboutASharedDataDirectory) {
  std::string dir = MakeTempDir();
  std::string data = dir + "/data";
  ASSERT_EQ(mkdir(data.c_str(), 0700), 0);
  ASSERT_EQ(chmod(data.c_str(), 0755), 0);
  Proxy proxy(dir, "");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  EXPECT_NE(
      ReadFile(proxy.stderr_path())
          .find("warn: data directory '" + data + "' is accessible by other users (mode 0755)"),
      std::string::npos)
      << ReadFile(proxy.stderr_path());
}

// ---------------------------------------------------------------------------
// Helpers for calls with raw bytes and for the proxy's memory

constexpr const char* kToken = "hardening-token";

// A memstore namespace behind a token (auth required), plus extra YAML.
std::string TokenConfig(const std::string& extra = "") {
  return "namespaces:\n"
         "  m:\n"
         "    plugin:\n"
         "      command: [prism-plugin-memstore]\n"
         "tokens:\n"
         "  - name: app\n"
         "    sha256: " +
         prism::proxy::Sha256Hex(kToken) +
         "\n"
         "    rights: {\"*\": [read, write]}\n" +
         extra;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // A connection of its own (channels with equal arguments share one).
  static std::atomic<int> n{0};
  args.SetInt("prism.test.channel", n++);
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

struct Reply {
  grpc::Status status;
  std::string bytes;
};

// One unary call with raw request bytes; a deadline of 0 sends none.
Reply RawCall(grpc::Channel& channel, const std::string& method, const std::string& bytes,
              const std::string& token = kToken, std::chrono::milliseconds deadline = 20s) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer req(&slice, 1), resp;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/prism.v1.KeyValue/" + method, grpc::StubOptions(), &req, &resp,
                 [&](grpc::Status st) { done.set_value(std::move(st)); });
  Reply r{done.get_future().get(), {}};
  std::vector<grpc::Slice> slices;
  if (r.status.ok() && resp.Dump(&slices).ok()) {
    for (const auto& sl : slices)
      r.bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  return r;
}

// Resident memory of a process, in MiB (VmRSS).
double RssMiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// Unauthenticated amplification

// A namespace over its 256-byte limit is INVALID_ARGUMENT before anything is
// recorded - also without a token - and 32 calls with a 4,000,000-byte one
// neither grow the proxy by more than 64 MiB nor write a long trace line nor
// rotate the trace file. 256 bytes pass the check (and get UNAUTHENTICATED).
TEST(Hardening, OversizedNamespaceIsRefusedFirstAndNeverRecorded) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto ch = Channel(proxy.address());
  auto get = [](const std::string& ns) {
    prism::v1::GetRequest r;
    r.set_namespace_(ns);
    r.set_key("k");
    return r.SerializeAsString();
  };
  auto at = RawCall(*ch, "Get", get(std::string(256, 'n')), "");
  EXPECT_EQ(at.status.error_code(), grpc::UNAUTHENTICATED) << at.status.error_message();
  auto over = RawCall(*ch, "Get", get(std::string(257, 'n')), "");
  EXPECT_EQ(over.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(over.status.error_message(), "namespace is 257 bytes; the limit is 256");
  auto known = RawCall(*ch, "Get", get("m"));  // warm up every path once
  ASSERT_TRUE(known.status.ok()) << known.status.error_message();

  const std::string huge = get(std::string(4000000, 'n'));
  double before = RssMiB(proxy.process().pid());
  for (int i = 0; i < 32; ++i) {
    auto r = RawCall(*ch, "Get", huge, "");
    ASSERT_EQ(r.status.error_code(), grpc::INVALID_ARGUMENT);
    ASSERT_EQ(r.status.error_message(), "namespace is 4000000 bytes; the limit is 256");
  }
  double after = RssMiB(proxy.process().pid());
  std::printf("proxy RSS: %.1f MiB before, %.1f MiB after 32 calls with a 4 MB namespace\n", before,
              after);
  EXPECT_LT(after - before, 64.0);
  // The SDK's value-length limit is on for the proxy and the plugins it
  // launches (they inherit the proxy's environment).
  std::string environ = ReadFile("/proc/" + std::to_string(proxy.PluginPid("m")) + "/environ");
  EXPECT_NE(environ.find(std::string("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=4096\0", 39)),
            std::string::npos);
  ASSERT_EQ(proxy.Stop(), 0);
  EXPECT_FALSE(fs::exists(proxy.trace_file() + ".1"));  // no rotation
  std::ifstream in(proxy.trace_file());
  size_t lines = 0, longest = 0;
  for (std::string line; std::getline(in, line); ++lines) longest = std::max(longest, line.size());
  EXPECT_GT(lines, 0u);
  EXPECT_LT(longest, 64u * 1024) << "a trace line of " << longest << " bytes";
  EXPECT_LT(fs::file_size(proxy.trace_file()), 2u << 20);
}

// A length-delimited protobuf field (payloads under 128 bytes).
std::string Field(int number, const std::string& payload) {
  return std::string{static_cast<char>(number << 3 | 2), static_cast<char>(payload.size())} +
         payload;
}

// Bytes protobuf cannot parse are INVALID_ARGUMENT with a message naming the
// field (not INTERNAL with none), and nothing reaches the plugin (no
// libprotobuf line in the log).
TEST(Hardening, InvalidProtobufIsInvalidArgument) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto ch = Channel(proxy.address());
  const std::string ns = Field(1, "m");
  struct Case {
    const char* method;
    std::string bytes;
    const char* message;
  } cases[] = {
      {"Get", ns + Field(2, "\xc3\x28"), "key is not valid UTF-8"},
      {"Set", ns + Field(2, "\xff") + Field(3, "v"), "key is not valid UTF-8"},
      {"BatchGet", ns + Field(2, "a") + Field(2, "\xfe"), "keys[1] is not valid UTF-8"},
      {"BatchSet", ns + Field(2, Field(1, "\xff")), "items[0].key is not valid UTF-8"},
      {"BatchSet", ns + Field(2, "\x10"), "malformed request: items[0]: truncated varint"},
      {"Delete", ns + "\x18\xff", "malformed request: truncated varint"},
      {"Exists", ns + "\x12\x05" + "ab", "malformed request: length past the end"},
  };
  for (const auto& c : cases) {
    auto r = RawCall(*ch, c.method, c.bytes);
    EXPECT_EQ(r.status.error_code(), grpc::INVALID_ARGUMENT) << c.method << ": " << c.message;
    EXPECT_EQ(r.status.error_message(), c.message) << c.method;
  }
  // A value is bytes: anything goes, and comes back unchanged.
  prism::v1::SetRequest set;
  set.set_namespace_("m");
  set.set_key("k");
  set.set_value(std::string("\xff\x00\xc3\x28", 4));
  ASSERT_TRUE(RawCall(*ch, "Set", set.SerializeAsString()).status.ok());
  ASSERT_EQ(proxy.Stop(), 0);
  EXPECT_EQ(ReadFile(proxy.stderr_path()).find("libprotobuf"), std::string::npos)
      << ReadFile(proxy.stderr_path());
}

// The limits docs/api.md promises, end to end at their boundaries: a 4 MiB
// value is stored and read back, 4 MiB + 1 is INVALID_ARGUMENT; a BatchSet of
// 2 x 3 MiB passes; a request of exactly 64 MiB passes, 64 MiB + 1 is
// RESOURCE_EXHAUSTED.
TEST(Hardening, ValueAndMessageLimitsHoldAtTheBoundary) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto ch = Channel(proxy.address());
  constexpr size_t kValue = prism::plugin::kMaxValueBytes;
  prism::v1::SetRequest set;
  set.set_namespace_("m");
  set.set_key("big");
  set.set_value(std::string(kValue, 'v'));
  auto ok = RawCall(*ch, "Set", set.SerializeAsString());
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  prism::v1::GetRequest get;
  get.set_namespace_("m");
  get.set_key("big");
  auto back = RawCall(*ch, "Get", get.SerializeAsString());
  ASSERT_TRUE(back.status.ok()) << back.status.error_message();
  prism::v1::GetResponse got;
  ASSERT_TRUE(got.ParseFromString(back.bytes));
  EXPECT_EQ(got.value().size(), kValue);
  set.set_value(std::string(kValue + 1, 'v'));
  auto over = RawCall(*ch, "Set", set.SerializeAsString());
  EXPECT_EQ(over.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(over.status.error_message(), "value is 4194305 bytes; the limit is 4194304");

  // Key and batch limits, through the proxy to the plugin.
  get.set_key(std::string(prism::plugin::kMaxKeyBytes, 'k'));
  EXPECT_TRUE(RawCall(*ch, "Get", get.SerializeAsString()).status.ok());
  get.set_key(std::string(prism::plugin::kMaxKeyBytes + 1, 'k'));
  auto long_key = RawCall(*ch, "Get", get.SerializeAsString());
  EXPECT_EQ(long_key.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(long_key.status.error_message(), "key is 4097 bytes; the limit is 4096");
  get.set_key("big");
  prism::v1::BatchGetRequest keys;
  keys.set_namespace_("m");
  for (size_t i = 0; i < prism::plugin::kMaxBatchItems; ++i) keys.add_keys("k" + std::to_string(i));
  EXPECT_TRUE(RawCall(*ch, "BatchGet", keys.SerializeAsString()).status.ok());
  keys.add_keys("one-more");
  auto too_many = RawCall(*ch, "BatchGet", keys.SerializeAsString());
  EXPECT_EQ(too_many.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(too_many.status.error_message(), "keys has 1001 entries; the limit is 1000");

  prism::v1::BatchSetRequest two;
  two.set_namespace_("m");
  for (int i = 0; i < 2; ++i) {
    auto* item = two.add_items();
    item->set_key("three-" + std::to_string(i));
    item->set_value(std::string(3 << 20, 'x'));
  }
  auto batch = RawCall(*ch, "BatchSet", two.SerializeAsString());
  EXPECT_TRUE(batch.status.ok()) << batch.status.error_message();

  // 16 values just under 4 MiB and a 17th sized so that the whole request
  // is exactly 64 MiB.
  constexpr size_t kMessage = prism::plugin::kMaxMessageBytes;
  prism::v1::BatchSetRequest full;
  full.set_namespace_("m");
  for (int i = 0; i < 17; ++i) {
    auto* item = full.add_items();
    item->set_key("k" + std::to_string(i));
    if (i < 16) item->set_value(std::string(kValue - 64, 'f'));
  }
  auto* last = full.mutable_items(16);
  while (full.ByteSizeLong() != kMessage) {
    size_t size = full.ByteSizeLong();
    size_t v = last->value().size();
    last->mutable_value()->resize(size < kMessage ? v + std::min<size_t>(kMessage - size, 64)
                                                  : v - 1);
  }
  auto exact = RawCall(*ch, "BatchSet", full.SerializeAsString());
  EXPECT_TRUE(exact.status.ok()) << exact.status.error_message();
  last->mutable_value()->push_back('+');
  ASSERT_EQ(full.ByteSizeLong(), kMessage + 1);
  auto too_big = RawCall(*ch, "BatchSet", full.SerializeAsString());
  EXPECT_EQ(too_big.status.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_EQ(too_big.status.error_message(),
            "Received message larger than max (67108865 vs. 67108864)");
  // The proxy is still serving.
  EXPECT_TRUE(RawCall(*ch, "Get", get.SerializeAsString()).status.ok());
}

// A call that carries no deadline gets the proxy's (limits.default_deadline):
// a stalled plugin costs it that long, with a message that says why.
TEST(Hardening, CallsWithoutADeadlineGetTheDefault) {
  std::string dir = MakeTempDir();
  // Health checks far apart: the supervisor must not restart the stopped plugin.
  Proxy proxy(dir, TokenConfig("limits:\n  default_deadline: 300ms\n"
                               "supervision: {health_interval: 60s}\n"));
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto ch = Channel(proxy.address());
  prism::v1::GetRequest get;
  get.set_namespace_("m");
  get.set_key("k");
  ASSERT_TRUE(RawCall(*ch, "Get", get.SerializeAsString(), kToken, 0ms).status.ok());
  pid_t plugin = proxy.PluginPid("m");
  ASSERT_GT(plugin, 0);
  ASSERT_TRUE(StopProcess(plugin, 5s));
  auto start = std::chrono::steady_clock::now();
  auto r = RawCall(*ch, "Get", get.SerializeAsString(), kToken, 0ms);
  auto took = std::chrono::steady_clock::now() - start;
  kill(plugin, SIGCONT);
  EXPECT_EQ(r.status.error_code(), grpc::DEADLINE_EXCEEDED);
  EXPECT_EQ(r.status.error_message(),
            "the call set no deadline and the proxy's default of 300 ms "
            "(limits.default_deadline) passed");
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 3s);
  // A caller's own deadline still wins, longer than the default too.
  auto own = RawCall(*ch, "Get", get.SerializeAsString(), kToken, 2s);
  EXPECT_TRUE(own.status.ok()) << own.status.error_message();
}

// Request metadata is bounded (8 KiB, counted as HTTP/2 does: name + value
// + 32 per entry, gRPC's own headers included): a call whose headers pass it
// fails RESOURCE_EXHAUSTED before the proxy sees it; the proxy keeps serving.
TEST(Hardening, MetadataIsBounded) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  prism::v1::GetRequest get;
  get.set_namespace_("m");
  get.set_key("k");
  const std::string bytes = get.SerializeAsString();
  auto call = [&](size_t pad) {
    auto ch = Channel(proxy.address());
    grpc::GenericStub stub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    ctx.AddMetadata("x-pad", std::string(pad, 'p'));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer req(&slice, 1), resp;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/prism.v1.KeyValue/Get", grpc::StubOptions(), &req, &resp,
                   [&](grpc::Status st) { done.set_value(std::move(st)); });
    return done.get_future().get();
  };
  // An entry costs name + value + 32: "x-pad" with `pad` bytes is pad + 37.
  constexpr size_t kBound = prism::plugin::kMaxMetadataBytes;
  // Room left for gRPC's own headers and the token (about 600 bytes here).
  auto fits = call(kBound - 37 - 1024);
  EXPECT_TRUE(fits.ok()) << fits.error_message();
  // The entry alone reaches the bound.
  auto over = call(kBound - 37);
  EXPECT_EQ(over.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_EQ(over.error_message(), "received initial metadata size exceeds limit");
  EXPECT_TRUE(call(0).ok());
}

// Streams that send their headers and then nothing, with no deadline, from
// `connections` connections: `per_connection` each. Returns the proxy's RSS
// growth in MiB once they are all open (held until the function returns).
double RssGrowthUnderPendingStreams(Proxy& proxy, int connections, int per_connection,
                                    bool* good_call_ok) {
  prism::v1::GetRequest get;
  get.set_namespace_("m");
  get.set_key("k");
  auto probe = Channel(proxy.address());
  (void)RawCall(*probe, "Get", get.SerializeAsString());  // warm up every path once
  const double before = RssMiB(proxy.process().pid());
  grpc::CompletionQueue cq;
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
  };
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int c = 0; c < connections; ++c) {
    channels.push_back(Channel(proxy.address()));
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
    for (int i = 0; i < per_connection; ++i) {
      auto s = std::make_unique<Stream>();
      s->call = stubs.back()->PrepareCall(&s->ctx, "/prism.v1.KeyValue/Get", &cq);
      s->call->StartCall(s.get());  // the headers; no message, no half-close
      streams.push_back(std::move(s));
    }
  }
  // Let the proxy take in what the connections let through.
  // Until the RSS has not grown for 1 s (at least 2 s, at most 10 s: a
  // loaded machine takes longer to push 20,000 streams through).
  double peak = before;
  int flat = 0;
  for (int i = 0; i < 100 && (i < 20 || flat < 10); ++i) {
    std::this_thread::sleep_for(100ms);
    double now = RssMiB(proxy.process().pid());
    flat = now > peak + 0.5 ? 0 : flat + 1;
    peak = std::max(peak, now);
  }
  // Meanwhile a well-behaved client on a connection of its own is served.
  *good_call_ok =
      RawCall(*Channel(proxy.address()), "Get", get.SerializeAsString(), kToken, 5s).status.ok();
  for (auto& s : streams) s->ctx.TryCancel();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return peak - before;
}

// 20,000 pending streams (20 connections x 1,000) cannot grow the proxy past
// a bound: max_concurrent_streams (100 per connection) lets 2,000 in, and a
// normal call is still served. The same load with the limit lifted shows what
// the limit saves.
TEST(Hardening, PendingStreamsCannotGrowTheProxyPastABound) {
  std::string dir = MakeTempDir();
  double limited = 0, unlimited = 0;
  bool good = false;
  {
    Proxy proxy(dir, TokenConfig());
    ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
    limited = RssGrowthUnderPendingStreams(proxy, 20, 1000, &good);
    EXPECT_TRUE(good);
  }
  {
    std::string dir2 = MakeTempDir();
    Proxy proxy(dir2, TokenConfig("limits: {max_concurrent_streams: 100000}\n"));
    ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
    unlimited = RssGrowthUnderPendingStreams(proxy, 20, 1000, &good);
  }
  std::printf(
      "proxy RSS growth under 20 x 1000 pending streams: %.1f MiB (100 per connection), "
      "%.1f MiB (100000 per connection)\n",
      limited, unlimited);
  EXPECT_LT(limited, 64.0);
  // The measure sees the streams: without the limit they cost several times more.
  EXPECT_GT(unlimited, 3 * limited);
}

// limits.max_concurrent_streams at its boundary: with 3, three streams that
// sent only their headers fill one connection, and a fourth call on it is
// held by the client (gRPC queues what the server's SETTINGS do not allow)
// until one of them ends; with 4 the same call is served at once.
TEST(Hardening, StreamsPerConnectionHoldAtTheBoundary) {
  prism::v1::GetRequest get;
  get.set_namespace_("m");
  get.set_key("k");
  const std::string bytes = get.SerializeAsString();
  for (int limit : {3, 4}) {
    std::string dir = MakeTempDir();
    Proxy proxy(dir,
                TokenConfig("limits: {max_concurrent_streams: " + std::to_string(limit) + "}\n"));
    ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
    auto channel = Channel(proxy.address());
    ASSERT_TRUE(RawCall(*channel, "Get", bytes).status.ok());  // connected, SETTINGS known
    grpc::CompletionQueue cq;
    grpc::GenericStub stub(channel);
    struct Stream {
      grpc::ClientContext ctx;
      std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
    };
    std::vector<std::unique_ptr<Stream>> pending;
    for (int i = 0; i < 3; ++i) {
      auto st = std::make_unique<Stream>();
      st->ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
      st->call = stub.PrepareCall(&st->ctx, "/prism.v1.KeyValue/Get", &cq);
      st->call->StartCall(st.get());  // headers only
      pending.push_back(std::move(st));
    }
    void* tag;
    bool ok;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(cq.Next(&tag, &ok));  // the three have started
    const auto fourth = RawCall(*channel, "Get", bytes, kToken, 1000ms);
    if (limit == 4) {
      EXPECT_TRUE(fourth.status.ok()) << fourth.status.error_message();
    } else {
      EXPECT_EQ(fourth.status.error_code(), grpc::DEADLINE_EXCEEDED)
          << fourth.status.error_message();
      pending[0]->ctx.TryCancel();  // one ends: the next call goes through
      auto after = RawCall(*channel, "Get", bytes, kToken, 5s);
      EXPECT_TRUE(after.status.ok()) << after.status.error_message();
    }
    for (auto& st : pending) st->ctx.TryCancel();
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }
}

// Across connections the bound is limits.max_connections: 200 connections
// x 100 pending streams each, with 20 connections allowed, hold what 20 x 100
// hold (~25 MiB); the same load with the limit lifted shows what it saves.
TEST(Hardening, ManyConnectionsCannotGrowTheProxyPastABound) {
  double limited = 0, unlimited = 0;
  bool good = false;
  {
    std::string dir = MakeTempDir();
    Proxy proxy(dir, TokenConfig("limits: {max_connections: 20}\n"));
    ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
    limited = RssGrowthUnderPendingStreams(proxy, 200, 100, &good);
    // Every slot is taken: a well-behaved client is refused too (the
    // trade-off docs/config.md states), until the abuser goes.
    EXPECT_FALSE(good);
    EXPECT_NE(
        ReadFile(proxy.stderr_path()).find("limits.max_connections (20) connections are open"),
        std::string::npos)
        << ReadFile(proxy.stderr_path());
  }
  {
    std::string dir = MakeTempDir();
    Proxy proxy(dir, TokenConfig("limits: {max_connections: 65536}\n"));
    ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
    unlimited = RssGrowthUnderPendingStreams(proxy, 200, 100, &good);
    EXPECT_TRUE(good);
  }
  std::printf(
      "proxy RSS growth under 200 x 100 pending streams: %.1f MiB (20 connections allowed), "
      "%.1f MiB (65536 allowed)\n",
      limited, unlimited);
  EXPECT_LT(limited, 64.0);
  EXPECT_GT(unlimited, 3 * limited);
}

// limits.max_connections at its boundary: 3 connections are served, the
// 4th is refused (UNAVAILABLE, a warning in the log), and once one of the 3
// closes a new one is served again. The stop logs the count.
TEST(Hardening, TheConnectionOverMaxConnectionsIsRefusedUntilOneCloses) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig("limits: {max_connections: 3}\n"));
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  prism::v1::GetRequest get;
  get.set_namespace_("m");
  get.set_key("k");
  const std::string bytes = get.SerializeAsString();
  std::vector<std::shared_ptr<grpc::Channel>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(Channel(proxy.address()));
    auto r = RawCall(*held.back(), "Get", bytes);
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.error_message();
  }
  auto over = RawCall(*Channel(proxy.address()), "Get", bytes);
  EXPECT_EQ(over.status.error_code(), grpc::UNAVAILABLE) << over.status.error_message();
  EXPECT_NE(ReadFile(proxy.stderr_path()).find(": limits.max_connections (3) connections are open"),
            std::string::npos)
      << ReadFile(proxy.stderr_path());
  // The held ones still work.
  EXPECT_TRUE(RawCall(*held[2], "Get", bytes).status.ok());
  held.erase(held.begin());  // its connection closes
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    served = RawCall(*Channel(proxy.address()), "Get", bytes).status.ok();
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served);
  held.clear();
  ASSERT_EQ(proxy.Stop(), 0);
  const std::string log = ReadFile(proxy.stderr_path());
  EXPECT_NE(log.find(" refused at limits.max_connections (3)"), std::string::npos) << log;
}

// ---------------------------------------------------------------------------
// The CLI never aborts on bad input

// --json of a value that is not UTF-8 is base64 with value_encoding (it
// aborted in nlohmann::json, exit 134, and lost the CLI's span); --base64
// makes every value base64; a 4 MiB value comes through the CLI too.
TEST(Hardening, CliJsonCarriesBytes) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto ch = Channel(proxy.address());
  auto put = [&](const std::string& key, const std::string& value) {
    prism::v1::SetRequest set;
    set.set_namespace_("m");
    set.set_key(key);
    set.set_value(value);
    return RawCall(*ch, "Set", set.SerializeAsString()).status.ok();
  };
  ASSERT_TRUE(put("bin", std::string("\xde\xad\xbe\xef", 4)));
  ASSERT_TRUE(put("text", "héllo"));
  ASSERT_TRUE(put("big", std::string(prism::plugin::kMaxValueBytes, 'b')));
  const std::string cli_traces = dir + "/cli.jsonl";
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> all = {"kv", "--addr", proxy.address(), "-n", "m", "-t", kToken};
    all.insert(all.end(), args.begin(), args.end());
    return RunProcess(CliBinary(), all, {{"PRISM_TRACE_FILE", cli_traces}});
  };
  auto bin = cli({"get", "bin", "--json"});
  ASSERT_EQ(bin.exit_code, 0) << bin.err;
  const auto bin_json = nlohmann::json::parse(bin.out);
  EXPECT_EQ(bin_json["value"], "3q2+7w==");
  EXPECT_EQ(bin_json["value_encoding"], "base64");
  auto text = cli({"get", "text", "--json"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  auto j = nlohmann::json::parse(text.out);
  EXPECT_EQ(j["value"], "héllo");
  EXPECT_EQ(j["value_encoding"], "utf-8");
  auto forced = cli({"get", "text", "--json", "--base64"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(nlohmann::json::parse(forced.out)["value"], "aMOpbGxv");
  auto big = cli({"get", "big"});
  EXPECT_EQ(big.exit_code, 0) << big.err;
  EXPECT_EQ(big.out.size(), prism::plugin::kMaxValueBytes + 1);  // + the newline it adds
  // The CLI's own span was written for the binary value's call.
  const std::string bin_trace = bin_json["trace_id"];
  ASSERT_EQ(bin_trace.size(), 32u);
  EXPECT_NE(ReadFile(cli_traces).find(bin_trace), std::string::npos);
}

// Bad flags are exit 2 with a message, never a gRPC assertion (exit 134).
TEST(Hardening, CliRefusesWhatItCannotSend) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  const std::map<std::string, std::string> env = {{"PRISM_TRACE_FILE", dir + "/cli.jsonl"}};
  auto kv = [&](std::vector<std::string> args, std::map<std::string, std::string> more = {}) {
    std::vector<std::string> all = {"kv", "--addr", proxy.address(), "-n", "m"};
    all.insert(all.end(), args.begin(), args.end());
    more.insert(env.begin(), env.end());
    return RunProcess(CliBinary(), all, more);
  };
  WriteFile(dir + "/crlf-token", std::string(kToken) + "\r\n");
  WriteFile(dir + "/not-a-cert", "hello\n");
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    int exit_code;
    std::string err;  // a substring of stderr
  } cases[] = {
      {{"get", "k", "-t", kToken, "--request-id", "a\nb"},
       {},
       2,
       "prism: --request-id contains the byte 0x0a at offset 1; only printable ASCII characters "
       "(0x20-0x7e) can be sent\n"},
      {{"get", "k", "-t", std::string(kToken) + "\r"},
       {},
       2,
       "prism: the token contains the byte 0x0d at offset 15"},
      {{"get", "k"}, {{"PRISM_TOKEN", std::string(kToken) + "\r\n"}}, 0, ""},  // stripped
      {{"get", "k", "--token-file", dir + "/crlf-token"}, {}, 0, ""},
      {{"get", "k", "--token-file", dir + "/missing"},
       {},
       2,
       "prism: --token-file '" + dir + "/missing': No such file or directory\n"},
      {{"get", "k", "-t", kToken, "--ca-file", dir + "/crlf-token"},
       {},
       2,
       "prism: --ca-file needs --tls (without it the call would go out in plain text)\n"},
      {{"get", "k", "-t", kToken, "--tls", "--ca-file", dir + "/missing.pem"},
       {},
       2,
       "prism: --ca-file '" + dir + "/missing.pem': No such file or directory\n"},
      {{"get", "k", "-t", kToken, "--tls", "--ca-file", dir + "/not-a-cert"},
       {},
       2,
       "no PEM certificate in it"},
      {{"get", "\xff", "-t", kToken},
       {},
       2,
       "prism: KEY is not valid UTF-8 (namespaces and keys are text; values may be any bytes)\n"},
  };
  for (const auto& c : cases) {
    auto r = kv(c.args, c.env);
    std::string what = c.args.size() > 2 ? c.args[2] : c.args[0];
    EXPECT_EQ(r.exit_code, c.exit_code) << what << ": " << r.err;
    if (!c.err.empty()) {
      EXPECT_NE(r.err.find(c.err), std::string::npos) << what << ": " << r.err;
    }
  }
  // token hash from stdin drops a CR too: the same hash as the bare token.
  auto hash = RunProcess("/bin/sh",
                         {"-c", "printf 'hardening-token\\r\\n' | " + CliBinary() + " token hash"});
  EXPECT_EQ(hash.out, prism::proxy::Sha256Hex(kToken) + "\n") << hash.err;
}

// What a client sends ends up in spans; `prism trace show` prints it
// escaped: no ESC, CR or BEL from a namespace reaches the terminal.
TEST(Hardening, TraceViewerEscapesWhatClientsSent) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, TokenConfig());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto ch = Channel(proxy.address());
  prism::v1::GetRequest get;
  get.set_namespace_("\x1b]0;owned\x07\x1b[2J\rforged");
  get.set_key("k");
  auto r = RawCall(*ch, "Get", get.SerializeAsString());
  ASSERT_EQ(r.status.error_code(), grpc::NOT_FOUND);
  ASSERT_EQ(proxy.Stop(), 0);
  auto ls = RunProcess(CliBinary(), {"trace", "ls", "-f", proxy.trace_file()});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  std::smatch m;
  std::string ls_out = ls.out;
  ASSERT_TRUE(std::regex_search(ls_out, m, std::regex("([0-9a-f]{32})")));
  auto show = RunProcess(CliBinary(), {"trace", "show", m[1], "-v", "-f", proxy.trace_file()});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  for (const std::string& out : {ls.out, show.out}) {
    for (char c : out) {
      ASSERT_TRUE(c == '\n' || static_cast<unsigned char>(c) >= 0x20)
          << "byte " << static_cast<int>(c) << " in:\n"
          << out;
    }
  }
  EXPECT_NE(show.out.find("\\x1b]0;owned\\x07\\x1b[2J\\rforged"), std::string::npos) << show.out;
}

// A trace-file line nested 50,000 arrays deep is skipped with a warning
// (it overflowed the stack: a segfault); the other traces are listed.
TEST(Hardening, TraceViewerSkipsDeeplyNestedLines) {
  std::string dir = MakeTempDir();
  std::string file = dir + "/traces.jsonl";
  std::string good =
      R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c",)"
      R"("spanId":"1111111111111111","name":"fine","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]})";
  std::string bad = good;
  bad.replace(bad.find("\"name\""), 0,
              R"("attributes":[{"key":"a","value":{"arrayValue":{"values":)" +
                  std::string(50000, '[') + std::string(50000, ']') + "}}}],");
  WriteFile(file, good + "\n" + bad + "\n");
  for (std::vector<std::string> args :
       {std::vector<std::string>{"trace", "ls", "-f", file},
        std::vector<std::string>{"trace", "show", "0af76519", "-v", "-f", file}}) {
    auto r = RunProcess(CliBinary(), args);
    EXPECT_EQ(r.exit_code, 0) << args[1] << ": " << r.err;
    EXPECT_NE(
        r.err.find("prism: warning: " + file + ":2: skipped: JSON nested deeper than 64 levels"),
        std::string::npos)
        << r.err;
    EXPECT_NE(r.out.find("fine"), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace prism::e2e
