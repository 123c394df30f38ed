// prism-plugin-memstore: the in-memory KeyValue plugin (benchmark baseline).
#include "memstore_service.h"
#include "prism/plugin/serve.h"

int main(int argc, char** argv) {
  prism::plugin::PluginDefinition def;
  def.name = "memstore";
  def.description = "In-memory key-value store (sharded hash map); data is lost on exit.";
  def.settings = {{"shards", "number of lock shards of the map", "64", false},
                  {"data-dir", "accepted and ignored (memstore keeps nothing on disk)", "", false}};
  def.make_service =
      [](const prism::plugin::PluginEnv& env) -> absl::StatusOr<std::unique_ptr<grpc::Service>> {
    auto shards = env.settings.GetInt("shards", 1, 4096);
    if (!shards.ok()) return shards.status();
    return prism::memstore::MakeMemstoreService({.shards = static_cast<int>(*shards)});
  };
  return prism::plugin::Serve(argc, argv, std::move(def));
}
