#include "prism/tracing/resource.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "test_util.h"

namespace prism::tracing {
namespace {

using testing::ScopedEnv;

std::string Str(const Resource& r, const char* key) {
  const AttributeValue* v = r.Get(key);
  return v ? std::get<std::string>(*v) : "<missing>";
}

TEST(Resource, DefaultsAndSdkAttributes) {
  ScopedEnv a("OTEL_SERVICE_NAME", nullptr);
  ScopedEnv b("OTEL_RESOURCE_ATTRIBUTES", nullptr);
  Resource r = Resource::FromEnvironment();
  EXPECT_EQ(Str(r, "service.name").rfind("unknown_service:", 0), 0u);
  EXPECT_EQ(Str(r, "telemetry.sdk.name"), "prism-tracing");
  EXPECT_EQ(Str(r, "telemetry.sdk.language"), "cpp");
  EXPECT_NE(Str(r, "telemetry.sdk.version"), "<missing>");
  EXPECT_NE(Str(r, "host.name"), "<missing>");
  EXPECT_EQ(std::get<int64_t>(*r.Get("process.pid")), getpid());
}

TEST(Resource, EnvironmentPrecedence) {
  ScopedEnv a("OTEL_RESOURCE_ATTRIBUTES",
              "service.name=from-attrs, deployment.environment.name=prod,team=a%2Cb%3Dc");
  {
    Resource r = Resource::FromEnvironment("prism-proxy");
    EXPECT_EQ(Str(r, "service.name"), "from-attrs");  // user env beats the code default
    EXPECT_EQ(Str(r, "deployment.environment.name"), "prod");
    EXPECT_EQ(Str(r, "team"), "a,b=c");
  }
  ScopedEnv b("OTEL_SERVICE_NAME", "from-service-name");
  EXPECT_EQ(Str(Resource::FromEnvironment("prism-proxy"), "service.name"), "from-service-name");
}

TEST(Resource, MalformedAttributesAreIgnoredWhole) {
  ScopedEnv a("OTEL_SERVICE_NAME", nullptr);
  ScopedEnv b("OTEL_RESOURCE_ATTRIBUTES", "good=1,bad-no-equals");
  Resource r = Resource::FromEnvironment("svc");
  EXPECT_EQ(Str(r, "service.name"), "svc");
  EXPECT_EQ(r.Get("good"), nullptr);
}

TEST(Resource, ParseResourceAttributesTable) {
  struct Case {
    const char* in;
    bool ok;
    size_t n;
  } cases[] = {
      {"", true, 0},         {"a=1", true, 1},      {"a=1,b=2", true, 2}, {" a = 1 , b=2 ", true, 2},
      {"a=1,,b=2", true, 2}, {"a", false, 0},       {"=1", false, 0},     {"a=%zz", false, 0},
      {"a=%4", false, 0},    {"a=%41", true, 1},    {"a=1,a=2", true, 1},
  };
  for (const auto& c : cases) {
    auto r = ParseResourceAttributes(c.in);
    EXPECT_EQ(r.has_value(), c.ok) << c.in;
    if (r) {
      EXPECT_EQ(r->size(), c.n) << c.in;
    }
  }
}

TEST(Resource, MergeUpdatingWins) {
  Resource a(Attributes{{"x", std::string("1")}, {"y", std::string("1")}});
  Resource b(Attributes{{"y", std::string("2")}});
  Resource m = a.Merge(b);
  EXPECT_EQ(Str(m, "x"), "1");
  EXPECT_EQ(Str(m, "y"), "2");
}

}  // namespace
}  // namespace prism::tracing
