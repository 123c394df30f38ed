#pragma once
// A small sharded map keyed by object address (ServerContextBase*,
// ClientContext*): the side table that lets handlers find the span the
// interceptor started for their call without touching metadata.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace prism::grpc_tracing::internal {

template <typename V>
class PtrMap {
 public:
  void Put(const void* key, V value) {
    Shard& s = ShardFor(key);
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.map.insert_or_assign(key, std::move(value)).second) {
      size_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  void Erase(const void* key) {
    Shard& s = ShardFor(key);
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.map.erase(key)) size_.fetch_sub(1, std::memory_order_relaxed);
  }
  std::optional<V> Get(const void* key) const {
    if (size_.load(std::memory_order_relaxed) == 0) return std::nullopt;
    const Shard& s = ShardFor(key);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) return std::nullopt;
    return it->second;
  }

 private:
  static constexpr size_t kShards = 64;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<const void*, V> map;
  };
  Shard& ShardFor(const void* key) { return shards_[Index(key)]; }
  const Shard& ShardFor(const void* key) const { return shards_[Index(key)]; }
  static size_t Index(const void* key) {
    uint64_t h = reinterpret_cast<uintptr_t>(key);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h % kShards;
  }
  Shard shards_[kShards];
  std::atomic<int64_t> size_{0};
};

}  // namespace prism::grpc_tracing::internal
