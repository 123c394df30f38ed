// prism-plugin-postgres: KeyValue on a PostgreSQL table (libpq), with the
// trace context carried into PostgreSQL as a sqlcommenter comment.
#include "pg_service.h"
#include "prism/plugin/serve.h"

namespace {

absl::StatusOr<bool> OnOff(const prism::plugin::Settings& s, const std::string& name) {
  const std::string& v = s.Get(name);
  if (v == "on" || v == "true" || v == "1") return true;
  if (v == "off" || v == "false" || v == "0") return false;
  return absl::InvalidArgumentError("--" + name + " '" + v + "': expected on or off");
}

}  // namespace

int main(int argc, char** argv) {
  prism::plugin::PluginDefinition def;
  def.name = "postgres";
  def.description =
      "KeyValue on a PostgreSQL table (created if missing); trace context in a sqlcommenter "
      "comment.";
  def.settings = {
      {"conninfo",
       "libpq connection string or URI (host=... port=... dbname=... user=...); empty: the "
       "PG* environment variables",
       "", false},
      {"table", "table name (lower-case identifier, optionally schema.table)", "kv", false},
      {"pool-size", "number of server connections", "4", false},
      {"acquire-timeout-ms", "longest wait for a free connection (UNAVAILABLE after it)", "5000",
       false},
      {"connect-timeout-ms", "longest (re)connect attempt", "5000", false},
      {"sqlcommenter", "on|off: the statement span's traceparent as a comment in the SQL", "on",
       false},
      {"statements",
       "auto|unnamed|prepare-each: prepared statements without a comment, unnamed with one "
       "(auto); always unnamed; always prepared (for benchmarks)",
       "auto", false},
  };
  def.make_service =
      [](const prism::plugin::PluginEnv& env) -> absl::StatusOr<std::unique_ptr<grpc::Service>> {
    prism::postgres::PgOptions o;
    o.conninfo = env.settings.Get("conninfo");
    o.table = env.settings.Get("table");
    auto pool = env.settings.GetInt("pool-size", 1, 256);
    if (!pool.ok()) return pool.status();
    auto acquire = env.settings.GetInt("acquire-timeout-ms", 1, 600000);
    if (!acquire.ok()) return acquire.status();
    auto connect = env.settings.GetInt("connect-timeout-ms", 1, 600000);
    if (!connect.ok()) return connect.status();
    auto comment = OnOff(env.settings, "sqlcommenter");
    if (!comment.ok()) return comment.status();
    const std::string& mode = env.settings.Get("statements");
    if (mode == "auto") {
      o.statements = prism::postgres::StatementMode::kAuto;
    } else if (mode == "unnamed") {
      o.statements = prism::postgres::StatementMode::kUnnamed;
    } else if (mode == "prepare-each") {
      o.statements = prism::postgres::StatementMode::kPrepareEach;
    } else {
      return absl::InvalidArgumentError("--statements '" + mode +
                                        "': expected auto, unnamed or prepare-each");
    }
    o.pool_size = static_cast<int>(*pool);
    o.acquire_timeout_ms = static_cast<int>(*acquire);
    o.connect_timeout_ms = static_cast<int>(*connect);
    o.sqlcommenter = *comment;
    o.tracer = env.tracer;
    auto service = prism::postgres::PgService::Open(std::move(o));
    if (!service.ok()) return service.status();
    return std::unique_ptr<grpc::Service>(std::move(*service));
  };
  return prism::plugin::Serve(argc, argv, std::move(def));
}
