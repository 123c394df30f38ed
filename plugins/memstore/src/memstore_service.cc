#include "memstore_service.h"

#include <functional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "prism/plugin/validation.h"

namespace prism::memstore {
namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// Map key: namespace length, ':', namespace, key — unambiguous for any bytes.
std::string MapKey(const std::string& ns, const std::string& key) {
  std::string k = std::to_string(ns.size());
  k.reserve(k.size() + 1 + ns.size() + key.size());
  k.push_back(':');
  k.append(ns).append(key);
  return k;
}

class Store {
 public:
  explicit Store(int shards) : shards_(shards > 0 ? shards : 1) {}

  bool Get(const std::string& k, std::string* value) const {
    const Shard& s = ShardFor(k);
    std::shared_lock lock(s.mu);
    auto it = s.map.find(k);
    if (it == s.map.end()) return false;
    if (value) *value = it->second;
    return true;
  }
  void Set(std::string k, std::string value) {
    Shard& s = ShardFor(k);
    std::unique_lock lock(s.mu);
    s.map.insert_or_assign(std::move(k), std::move(value));
  }
  bool Delete(const std::string& k) {
    Shard& s = ShardFor(k);
    std::unique_lock lock(s.mu);
    return s.map.erase(k) > 0;
  }

 private:
  struct Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<std::string, std::string> map;
  };
  Shard& ShardFor(const std::string& k) {
    return shards_[std::hash<std::string>()(k) % shards_.size()];
  }
  const Shard& ShardFor(const std::string& k) const {
    return shards_[std::hash<std::string>()(k) % shards_.size()];
  }
  std::vector<Shard> shards_;
};

class MemstoreService final : public prism::v1::KeyValue::CallbackService {
 public:
  explicit MemstoreService(MemstoreOptions o) : store_(o.shards) {}

  ServerUnaryReactor* Get(CallbackServerContext* ctx, const prism::v1::GetRequest* req,
                          prism::v1::GetResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = Check(*ctx, *req);
    if (st.ok())
      resp->set_found(store_.Get(MapKey(req->namespace_(), req->key()), resp->mutable_value()));
    r->Finish(st);
    return r;
  }

  ServerUnaryReactor* Set(CallbackServerContext* ctx, const prism::v1::SetRequest* req,
                          prism::v1::SetResponse*) override {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = Check(*ctx, *req);
    if (st.ok()) store_.Set(MapKey(req->namespace_(), req->key()), req->value());
    r->Finish(st);
    return r;
  }

  ServerUnaryReactor* Delete(CallbackServerContext* ctx, const prism::v1::DeleteRequest* req,
                             prism::v1::DeleteResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = Check(*ctx, *req);
    if (st.ok()) resp->set_deleted(store_.Delete(MapKey(req->namespace_(), req->key())));
    r->Finish(st);
    return r;
  }

  ServerUnaryReactor* Exists(CallbackServerContext* ctx, const prism::v1::ExistsRequest* req,
                             prism::v1::ExistsResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = Check(*ctx, *req);
    if (st.ok()) resp->set_exists(store_.Get(MapKey(req->namespace_(), req->key()), nullptr));
    r->Finish(st);
    return r;
  }

  ServerUnaryReactor* BatchGet(CallbackServerContext* ctx, const prism::v1::BatchGetRequest* req,
                               prism::v1::BatchGetResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = Check(*ctx, *req);
    if (st.ok()) {
      for (const auto& key : req->keys()) {
        auto* out = resp->add_results();
        out->set_found(store_.Get(MapKey(req->namespace_(), key), out->mutable_value()));
      }
    }
    r->Finish(st);
    return r;
  }

  ServerUnaryReactor* BatchSet(CallbackServerContext* ctx, const prism::v1::BatchSetRequest* req,
                               prism::v1::BatchSetResponse*) override {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = Check(*ctx, *req);
    // Validated as a whole first, so a bad item changes nothing. Items are
    // applied one by one (not atomic across shards; the API allows it).
    if (st.ok()) {
      for (const auto& item : req->items()) {
        store_.Set(MapKey(req->namespace_(), item.key()), item.value());
      }
    }
    r->Finish(st);
    return r;
  }

  ServerUnaryReactor* BatchDelete(CallbackServerContext* ctx,
                                  const prism::v1::BatchDeleteRequest* req,
                                  prism::v1::BatchDeleteResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = Check(*ctx, *req);
    if (st.ok()) {
      int64_t n = 0;
      for (const auto& key : req->keys()) n += store_.Delete(MapKey(req->namespace_(), key));
      resp->set_deleted(n);
    }
    r->Finish(st);
    return r;
  }

 private:
  template <typename Req>
  static grpc::Status Check(const CallbackServerContext& ctx, const Req& req) {
    grpc::Status st = prism::plugin::Validate(req);
    if (!st.ok()) return st;
    return prism::plugin::CheckDeadline(ctx);
  }

  Store store_;
};

}  // namespace

std::unique_ptr<prism::v1::KeyValue::CallbackService> MakeMemstoreService(MemstoreOptions options) {
  return std::make_unique<MemstoreService>(options);
}

}  // namespace prism::memstore
