// PtrMap, the side table the interceptors and handlers share across gRPC
// threads. Header-only and free of gRPC, so the ThreadSanitizer build
// (make unit-tsan) runs it too.
#include "ptr_map.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace prism::grpc_tracing::internal {
namespace {

TEST(PtrMap, PutGetErase) {
  PtrMap<int> m;
  int a = 0, b = 0;
  EXPECT_FALSE(m.Get(&a).has_value());
  m.Put(&a, 1);
  m.Put(&b, 2);
  m.Put(&a, 3);  // replaces
  EXPECT_EQ(m.Get(&a), 3);
  EXPECT_EQ(m.Get(&b), 2);
  m.Erase(&a);
  m.Erase(&a);  // erasing twice is harmless
  EXPECT_FALSE(m.Get(&a).has_value());
  EXPECT_EQ(m.Get(&b), 2);
}

// Threads put, read back and erase their own keys while others do the same
// on keys in the same shards: every thread sees exactly its own values.
TEST(PtrMap, ConcurrentCallsSeeTheirOwnEntries) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 256;
  constexpr int kRounds = 50;
  PtrMap<int> m;
  std::vector<std::vector<char>> keys(kThreads, std::vector<char>(kKeys));
  std::vector<int> errors(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        for (int k = 0; k < kKeys; ++k) m.Put(&keys[t][k], t * 100000 + r * 1000 + k);
        for (int k = 0; k < kKeys; ++k) {
          if (m.Get(&keys[t][k]) != t * 100000 + r * 1000 + k) ++errors[t];
        }
        for (int k = 0; k < kKeys; ++k) m.Erase(&keys[t][k]);
        for (int k = 0; k < kKeys; ++k) {
          if (m.Get(&keys[t][k]).has_value()) ++errors[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace prism::grpc_tracing::internal
