#include "auth.h"

#include <gtest/gtest.h>

namespace prism::proxy {
namespace {

TEST(Auth, Sha256) {
  EXPECT_EQ(Sha256Hex("hello"), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

TEST(Auth, Bearer) {
  EXPECT_EQ(*ParseBearer("Bearer abc"), "abc");
  EXPECT_EQ(*ParseBearer("bearer  abc "), "abc");
  EXPECT_FALSE(ParseBearer("Basic abc"));
  EXPECT_FALSE(ParseBearer("Bearer "));
  EXPECT_FALSE(ParseBearer("Bearerabc"));
}

TEST(Auth, Loopback) {
  EXPECT_TRUE(IsLoopbackListenAddress("127.0.0.1:6051"));
  EXPECT_TRUE(IsLoopbackListenAddress("localhost:1"));
  EXPECT_TRUE(IsLoopbackListenAddress("[::1]:1"));
  EXPECT_TRUE(IsLoopbackListenAddress("unix:///tmp/x.sock"));
  EXPECT_FALSE(IsLoopbackListenAddress("0.0.0.0:6051"));
  EXPECT_FALSE(IsLoopbackListenAddress("[::]:6051"));
  EXPECT_FALSE(IsLoopbackListenAddress("10.0.0.1:6051"));
  // Literal addresses only: host names that merely look like loopback.
  struct Case {
    const char* address;
    bool loopback;
  } cases[] = {
      {"127.255.0.9:1", true},
      {"ipv4:127.0.0.1:1", true},
      {"dns:localhost:1", true},
      {"dns:///localhost:1", true},
      {"ipv6:[::1]:1", true},
      {"[0:0:0:0:0:0:0:1]:1", true},
      {"[::ffff:127.0.0.1]:1", true},
      {"127.evil.example.com:6051", false},
      {"127.0.0.1.nip.io:6051", false},
      {"dns:127.0.0.1.nip.io:6051", false},
      {"localhost.evil.example.com:1", false},
      {"127.1:6051", false},
      {"128.0.0.1:1", false},
      {"[::ffff:10.0.0.1]:1", false},
      {"[::2]:1", false},
      {"[::1:1", false},
      {":6051", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(IsLoopbackListenAddress(c.address), c.loopback) << c.address;
  }
}

TEST(Auth, TokensAndRights) {
  TokenConfig t{"app", Sha256Hex("secret"), {{"orders", kRead}, {"*", kRead | kWrite}}};
  TokenConfig r{"reader", Sha256Hex("r"), {{"orders", kRead}}};
  Authorizer a({t, r}, /*anonymous_allowed=*/false);
  EXPECT_EQ(a.Authenticate(std::nullopt).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a.Authenticate("Bearer nope").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a.Authenticate("Token secret").status().code(), absl::StatusCode::kUnauthenticated);
  auto app = a.Authenticate("Bearer secret");
  ASSERT_TRUE(app.ok());
  EXPECT_TRUE(a.Authorize(*app, "orders", kRead).ok());
  // The exact namespace entry wins over "*".
  EXPECT_EQ(a.Authorize(*app, "orders", kWrite).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(a.Authorize(*app, "other", kWrite).ok());
  auto reader = a.Authenticate("Bearer r");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(a.Authorize(*reader, "other", kRead).code(), absl::StatusCode::kPermissionDenied);
  auto denied = a.Authorize(*reader, "orders", kWrite);
  EXPECT_NE(std::string(denied.message()).find("no write right on namespace 'orders'"),
            std::string::npos);
  EXPECT_EQ(std::string(denied.message()).find("r'"), denied.message().find("r' has"));

  Authorizer open({}, /*anonymous_allowed=*/true);
  auto anon = open.Authenticate(std::nullopt);
  ASSERT_TRUE(anon.ok());
  EXPECT_TRUE(open.Authorize(*anon, "x", kWrite).ok());
  // A token that is presented must be valid even when anonymous calls are allowed.
  EXPECT_FALSE(open.Authenticate("Bearer zzz").ok());
}

}  // namespace
}  // namespace prism::proxy
