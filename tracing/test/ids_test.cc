#include "prism/tracing/ids.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace prism::tracing {
namespace {

TEST(Ids, GeneratedIdsAreValidAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    TraceId t = GenerateTraceId();
    SpanId s = GenerateSpanId();
    ASSERT_TRUE(t.IsValid());
    ASSERT_TRUE(s.IsValid());
    ASSERT_TRUE(seen.insert(t.ToHex()).second);
  }
}

TEST(Ids, HexRoundTrip) {
  TraceId t = TraceId::FromHex("4bf92f3577b34da6a3ce929d0e0e4736");
  ASSERT_TRUE(t.IsValid());
  EXPECT_EQ(t.ToHex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  SpanId s = SpanId::FromHex("00f067aa0ba902b7");
  EXPECT_EQ(s.ToHex(), "00f067aa0ba902b7");
}

TEST(Ids, FromHexRejectsBadInput) {
  EXPECT_FALSE(TraceId::FromHex("4BF92F3577B34DA6A3CE929D0E0E4736").IsValid());  // upper case
  EXPECT_FALSE(TraceId::FromHex("4bf92f3577b34da6a3ce929d0e0e473").IsValid());   // short
  EXPECT_FALSE(TraceId::FromHex("00000000000000000000000000000000").IsValid());  // zero
  EXPECT_FALSE(SpanId::FromHex("00f067aa0ba902bz").IsValid());
  EXPECT_FALSE(SpanId::FromHex("0000000000000000").IsValid());
}

TEST(Ids, Low56IsTheLastSevenBytes) {
  TraceId t = TraceId::FromHex("ffffffffffffffffff123456789abcde");
  EXPECT_EQ(t.Low56(), 0x123456789abcdeULL);
}

TEST(Ids, ThreadsGetDifferentSequences) {
  std::vector<std::string> a(100), b(100);
  std::thread ta([&] {
    for (auto& s : a) s = GenerateTraceId().ToHex();
  });
  std::thread tb([&] {
    for (auto& s : b) s = GenerateTraceId().ToHex();
  });
  ta.join();
  tb.join();
  std::set<std::string> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 200u);
}

// A forked child must not repeat the parent's next ids (nginx workers once
// produced duplicate trace ids this way).
TEST(Ids, ReseededAfterFork) {
  GenerateTraceId();  // make sure this thread's generator is seeded
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string id = GenerateTraceId().ToHex();
    ssize_t n = write(fds[1], id.data(), id.size());
    _exit(n == 32 ? 0 : 1);
  }
  std::string parent_next = GenerateTraceId().ToHex();
  char buf[32];
  ASSERT_EQ(read(fds[0], buf, 32), 32);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_NE(std::string(buf, 32), parent_next);
}

// The word-at-a-time converters against a plain per-character reference:
// every byte value in every position, and every invalid character in every
// position of a 32-char id.
TEST(Ids, HexMatchesPerCharacterReference) {
  auto reference_encode = [](const uint8_t* in, size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) {
      s += kDigits[in[i] >> 4];
      s += kDigits[in[i] & 0xf];
    }
    return s;
  };
  for (size_t n : {1u, 3u, 4u, 5u, 8u, 16u}) {
    for (int v = 0; v < 256; ++v) {
      for (size_t pos = 0; pos < n; ++pos) {
        std::vector<uint8_t> in(n, static_cast<uint8_t>(0x5a ^ pos));
        in[pos] = static_cast<uint8_t>(v);
        std::string out(2 * n, '?');
        hex::Encode(in.data(), n, out.data());
        const std::string want = reference_encode(in.data(), n);
        ASSERT_EQ(out, want) << "n=" << n << " v=" << v << " pos=" << pos;
        ASSERT_EQ(hex::Encode(in.data(), n), want) << "string form, n=" << n;
        std::vector<uint8_t> back(n, 0);
        ASSERT_TRUE(hex::DecodeLower(want, back.data(), n)) << want;
        ASSERT_EQ(back, in) << want;
      }
    }
  }
  const std::string good = "4bf92f3577b34da6a3ce929d0e0e4736";
  uint8_t out[16];
  for (size_t pos = 0; pos < good.size(); ++pos) {
    for (int c = 0; c < 256; ++c) {
      const bool valid = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      std::string s = good;
      s[pos] = static_cast<char>(c);
      ASSERT_EQ(hex::DecodeLower(s, out, 16), valid) << "pos=" << pos << " char=" << c;
    }
  }
}

}  // namespace
}  // namespace prism::tracing
