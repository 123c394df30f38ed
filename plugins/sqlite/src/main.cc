// prism-plugin-sqlite: the embedded default KeyValue backend (one SQLite
// file in the data directory).
#include "prism/plugin/serve.h"
#include "sqlite_service.h"

int main(int argc, char** argv) {
  prism::plugin::PluginDefinition def;
  def.name = "sqlite";
  def.description = "KeyValue on a SQLite file (WAL mode) in the data directory.";
  def.settings = {
      {"data-dir", "directory of the database file (created if missing)", ".", false},
      {"file", "database file name inside the data directory", "prism.db", false},
      {"pool-size", "number of SQLite connections", "4", false},
      {"busy-timeout-ms", "how long a statement waits for a lock", "5000", false},
  };
  def.make_service =
      [](const prism::plugin::PluginEnv& env) -> absl::StatusOr<std::unique_ptr<grpc::Service>> {
    prism::sqlite::SqliteOptions o;
    o.data_dir = env.settings.Get("data-dir");
    o.file = env.settings.Get("file");
    if (o.file.empty() || o.file.find('/') != std::string::npos) {
      return absl::InvalidArgumentError("--file '" + o.file + "': expected a plain file name");
    }
    auto pool = env.settings.GetInt("pool-size", 1, 256);
    if (!pool.ok()) return pool.status();
    auto busy = env.settings.GetInt("busy-timeout-ms", 0, 600000);
    if (!busy.ok()) return busy.status();
    o.pool_size = static_cast<int>(*pool);
    o.busy_timeout_ms = static_cast<int>(*busy);
    o.tracer = env.tracer;
    auto service = prism::sqlite::SqliteService::Open(std::move(o));
    if (!service.ok()) return service.status();
    return std::unique_ptr<grpc::Service>(std::move(*service));
  };
  return prism::plugin::Serve(argc, argv, std::move(def));
}
