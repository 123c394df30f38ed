#pragma once
// The memstore KeyValue service (callback API): an in-memory sharded hash
// map. The zero-cost baseline: its spans are the plugin SERVER span only
// (a map operation costs less than a span would).

#include <memory>

#include "prism/v1/kv.grpc.pb.h"

namespace prism::memstore {

struct MemstoreOptions {
  int shards = 64;
};

std::unique_ptr<prism::v1::KeyValue::CallbackService> MakeMemstoreService(MemstoreOptions options);

}  // namespace prism::memstore
