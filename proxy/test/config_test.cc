#include "config.h"

#include <gtest/gtest.h>

#include "auth.h"  // RightsToString

namespace prism::proxy {
namespace {

constexpr const char* kGood = R"(
listen: 0.0.0.0:7000
data_dir: /var/lib/prism
namespaces:
  default:
    plugin:
      command: [prism-plugin-sqlite]
  cache:
    plugin:
      address: unix:///run/cache.sock
tokens:
  - name: app
    sha256: 2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824
    rights:
      default: [read, write]
      cache: read
tracing:
  sampler: parentbased_traceidratio
  sampler_arg: "0.01"
  exporters: [file, otlp]
  trace_file_max_mb: 50
supervision:
  health_interval: 2s
  restart_backoff_initial: 100ms
  max_restarts: 5
  restart_window: 120s
limits:
  max_concurrent_streams: 10
  max_connections: 65536
  default_deadline: 2s
  memory_mb: 64
)";

TEST(Config, ParsesEveryKey) {
  auto c = ParseConfig(kGood, "prism.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "0.0.0.0:7000");
  ASSERT_EQ(c->namespaces.size(), 2u);
  EXPECT_EQ(c->namespaces[0].plugin.command[0], "prism-plugin-sqlite");
  EXPECT_EQ(c->namespaces[1].plugin.address, "unix:///run/cache.sock");
  ASSERT_EQ(c->tokens.size(), 1u);
  EXPECT_EQ(c->tokens[0].sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(c->tokens[0].rights.at("default"), kRead | kWrite);
  EXPECT_EQ(c->tokens[0].rights.at("cache"), kRead);
  EXPECT_EQ(*c->tracing.exporters, "file,otlp");
  EXPECT_EQ(*c->tracing.trace_file_max_mb, "50");
  EXPECT_EQ(c->supervision.health_interval.count(), 2000);
  EXPECT_EQ(c->supervision.restart_backoff_initial.count(), 100);
  EXPECT_EQ(c->supervision.max_restarts, 5);
  EXPECT_EQ(c->supervision.restart_window.count(), 120000);
  EXPECT_EQ(c->limits.max_concurrent_streams, 10);
  EXPECT_EQ(c->limits.max_connections, 65536);
  EXPECT_EQ(c->limits.default_deadline.count(), 2000);
  EXPECT_EQ(c->limits.memory_mb, 64);
  ASSERT_TRUE(FinalizeConfig(*c).ok());
  EXPECT_EQ(c->namespaces[0].plugin.settings.at("data-dir"), "/var/lib/prism");
}

// PubSub rights are their own: [read, write] grants neither (docs/config.md).
TEST(Config, PublishAndSubscribeRights) {
  auto c = ParseConfig(
      "namespaces: {a: {plugin: {command: x}}, b: {plugin: {command: y}}}\ntokens:\n"
      "  - name: t\n    sha256: "
      "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"
      "    rights: {a: [publish, subscribe], b: [read, write, subscribe]}\n",
      "f.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tokens[0].rights.at("a"), kPublish | kSubscribe);
  EXPECT_EQ(c->tokens[0].rights.at("b"), kRead | kWrite | kSubscribe);
  EXPECT_EQ(RightsToString(kPublish | kSubscribe), "publish,subscribe");
  EXPECT_EQ(RightsToString(kRead | kWrite), "read,write");
  EXPECT_EQ(RightsToString(kNone), "none");
}

struct BadCase {
  const char* yaml;
  const char* expect;  // substring of the message
};

TEST(Config, ErrorsNameKeyAndLine) {
  const BadCase cases[] = {
      {"listen: 127.0.0.1:1\nnamespaces:\n  a:\n    plugin:\n      comand: [x]\n",
       "f.yaml:5:7: namespaces.a.plugin.comand: unknown key"},
      {"namespaces:\n  a:\n    plugin:\n      command: [x]\n      address: y\n",
       "f.yaml:4:7: namespaces.a.plugin: set exactly one"},
      {"listen: [1, 2]\nnamespaces: {a: {plugin: {command: x}}}\n", "f.yaml:1:9: listen:"},
      {"namespaces: {a: {plugin: {command: x}}}\ntokens:\n  - name: t\n    sha256: abc\n"
       "    rights: {a: read}\n",
       "f.yaml:4:13: tokens[0].sha256: expected 64 hex digits"},
      {"namespaces: {a: {plugin: {command: x}}}\ntokens:\n  - name: t\n    sha256: "
       "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"
       "    rights: {b: read}\n",
       "tokens[0].rights.b: no such namespace"},
      {"namespaces: {a: {plugin: {command: x}}}\ntokens:\n  - name: t\n    sha256: "
       "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"
       "    rights: {a: [read, delete]}\n",
       "unknown right 'delete'"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  sampler: sometimes\n",
       "f.yaml:3:12: tracing.sampler: unknown sampler"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  sampler: adaptive\n"
       "  sampler_arg: \"0.5\"\n",
       "f.yaml:4:16: tracing.sampler_arg: the adaptive sampler takes its settings from "
       "tracing.adaptive (ratio, slow, buffer_mb)"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  adaptive: {ratio: 0.1}\n",
       "f.yaml:3:13: tracing.adaptive: set only with 'sampler: adaptive'"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  sampler: adaptive\n"
       "  adaptive: {ratio: 2}\n",
       "f.yaml:4:21: tracing.adaptive.ratio: expected a probability between 0 and 1"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  sampler: adaptive\n"
       "  adaptive: {slow: fast}\n",
       "f.yaml:4:20: tracing.adaptive.slow: expected a duration like 500, 500ms or 2s"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  sampler: adaptive\n"
       "  adaptive: {buffer_mb: 0}\n",
       "f.yaml:4:25: tracing.adaptive.buffer_mb: expected a whole number of MiB, 1-65536"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  sampler: adaptive\n"
       "  adaptive: {rate: 1}\n",
       "f.yaml:4:14: tracing.adaptive.rate: unknown key (expected one of: ratio, slow, "
       "buffer_mb)"},
      {"namespaces: {a: {plugin: {command: x}, slow: 1h}}\n",
       "f.yaml:1:46: namespaces.a.slow: expected a duration like 500, 500ms or 2s"},
      {"namespaces: {a: {plugin: {command: x}}}\ntracing:\n  trace_file_max_mb: -1\n",
       "f.yaml:3:22: tracing.trace_file_max_mb: expected a whole number of MiB"},
      {"namespaces: {a: {plugin: {command: x}}}\nsupervision:\n  health_interval: soon\n",
       "f.yaml:3:20: supervision.health_interval"},
      {"namespaces: {a: {plugin: {command: x}}}\nsupervision:\n  max_restarts: -1\n",
       "f.yaml:3:17: supervision.max_restarts: expected a whole number from 0 to 1000000 (got "
       "'-1')"},
      {"namespaces: {a: {plugin: {command: x}}}\nsupervision:\n  max_restarts: 1000001\n",
       "supervision.max_restarts: expected a whole number from 0 to 1000000"},
      {"namespaces: {a: {plugin: {command: x}}}\nsupervision:\n  restart_window: 0\n",
       "supervision.restart_window: must be greater than 0"},
      {"namespaces:\n  - a\n", "f.yaml:2:3: namespaces: expected a mapping"},
      {"listen: 1.2.3.4:5\n", "namespaces: missing"},
      {"listen: 127.0.0.1:99999\nnamespaces: {a: {plugin: {command: x}}}\n",
       "f.yaml:1:9: listen: the port must be a number from 0 to 65535, got '99999'"},
      {"listen: not an address:1\nnamespaces: {a: {plugin: {command: x}}}\n",
       "f.yaml:1:9: listen: the address contains whitespace"},
      {"namespaces: {a: {plugin: {address: \"10.0.0.1:0\"}}}\n",
       "namespaces.a.plugin.address: the port must be a number from 1 to 65535"},
      {"namespaces: {a: {plugin: {command: x}}\n", "f.yaml:"},  // unbalanced
      {"namespaces: {'bad name': {plugin: {command: x}}}\n", "namespaces.bad name:"},
      {"", "the file is empty"},
      {"namespaces: {a: {plugin: {address: x, settings: {k: v}}}}\n",
       "f.yaml:1:36: namespaces.a.plugin.address: expected HOST:PORT"},
      {"namespaces: {a: {plugin: {address: \"h:1\", settings: {k: v}}}}\n",
       "namespaces.a.plugin.settings"},
      {"namespaces: {a: {plugin: {command: x}}}\nlimits:\n  max_concurrent_streams: 0\n",
       "f.yaml:3:27: limits.max_concurrent_streams: expected a whole number from 1 to 100000 (got "
       "'0')"},
      {"namespaces: {a: {plugin: {command: x}}}\nlimits:\n  max_connections: 0\n",
       "f.yaml:3:20: limits.max_connections: expected a whole number from 1 to 65536 (got '0')"},
      {"namespaces: {a: {plugin: {command: x}}}\nlimits:\n  max_connections: 65537\n",
       "f.yaml:3:20: limits.max_connections: expected a whole number from 1 to 65536 (got "
       "'65537')"},
      {"namespaces: {a: {plugin: {command: x}}}\nlimits:\n  memory_mb: 15\n",
       "f.yaml:3:14: limits.memory_mb: expected a whole number from 16 to 1048576 (got '15')"},
      {"namespaces: {a: {plugin: {command: x}}}\nlimits:\n  memory_mb: 1e3\n",
       "limits.memory_mb: expected a whole number"},
      {"namespaces: {a: {plugin: {command: x}}}\nlimits:\n  default_deadline: 0\n",
       "f.yaml:3:21: limits.default_deadline: must be greater than 0"},
      {"namespaces: {a: {plugin: {command: x}}}\nlimits:\n  streams: 5\n",
       "f.yaml:3:3: limits.streams: unknown key"},
  };
  for (const auto& c : cases) {
    auto r = ParseConfig(c.yaml, "f.yaml");
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(c.expect), std::string::npos)
        << "got: " << r.status().message() << "\nwanted: " << c.expect;
  }
}

TEST(Config, AdaptiveSampling) {
  auto c = ParseConfig(
      "namespaces:\n  a: {plugin: {command: x}, slow: 250ms}\n  b: {plugin: {command: x}}\n"
      "tracing:\n  sampler: adaptive\n  adaptive: {ratio: 0.05, slow: 2s, buffer_mb: 8}\n",
      "f.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c->tracing.sampler, "prism_adaptive");
  ASSERT_TRUE(c->tracing.adaptive);
  EXPECT_EQ(c->tracing.adaptive->SamplerArg(), "ratio=0.05,slow_ms=2000,buffer_mb=8");
  EXPECT_EQ(c->tracing.adaptive->SamplerArg(c->namespaces[0].slow),
            "ratio=0.05,slow_ms=250,buffer_mb=8");
  EXPECT_EQ(c->namespaces[0].slow->count(), 250);
  EXPECT_FALSE(c->namespaces[1].slow);
  // The defaults: 1 %, 100 ms, 32 MiB.
  auto d = ParseConfig("namespaces: {a: {plugin: {command: x}}}\ntracing: {sampler: adaptive}\n",
                       "f.yaml");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->tracing.adaptive->SamplerArg(), "ratio=0.01,slow_ms=100,buffer_mb=32");
}

// yaml-cpp stops at a NUL byte; a binary file must not pass as empty.
TEST(Config, BinaryFileIsNotYaml) {
  auto r = ParseConfig(std::string("listen: a\0\1\2", 12), "f.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "f.yaml: not a YAML text file (a NUL byte at offset 9)");
}

TEST(Config, EmbeddedDefault) {
  Config c = EmbeddedDefaultConfig("/tmp/d");
  ASSERT_TRUE(FinalizeConfig(c).ok());
  ASSERT_EQ(c.namespaces.size(), 1u);
  EXPECT_EQ(c.namespaces[0].name, "default");
  EXPECT_EQ(c.namespaces[0].plugin.command[0], "prism-plugin-sqlite");
  EXPECT_EQ(c.namespaces[0].plugin.settings.at("data-dir"), "/tmp/d");
  EXPECT_EQ(c.listen, kDefaultListen);
  EXPECT_EQ(c.limits.max_concurrent_streams, 100);
  EXPECT_EQ(c.limits.max_connections, 256);
  EXPECT_EQ(c.limits.default_deadline.count(), 30000);
  EXPECT_EQ(c.limits.memory_mb, 512);
}

}  // namespace
}  // namespace prism::proxy
