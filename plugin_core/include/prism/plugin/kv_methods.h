#pragma once
// The seven prism.v1.KeyValue methods of a sync-API service, declared as
// overrides in one place, so every sync plugin declares the same interface:
//
//   class MyKv final : public prism::v1::KeyValue::Service {
//    public:
//     PRISM_KV_SYNC_METHODS();
//   };
//
// (Then define MyKv::Get, ::Set, ::Delete, ::Exists, ::BatchGet, ::BatchSet,
// ::BatchDelete as usual.)

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "prism/v1/kv.pb.h"

#define PRISM_KV_SYNC_METHOD(name)                                         \
  grpc::Status name(grpc::ServerContext*, const prism::v1::name##Request*, \
                    prism::v1::name##Response*) override

#define PRISM_KV_SYNC_METHODS()   \
  PRISM_KV_SYNC_METHOD(Get);      \
  PRISM_KV_SYNC_METHOD(Set);      \
  PRISM_KV_SYNC_METHOD(Delete);   \
  PRISM_KV_SYNC_METHOD(Exists);   \
  PRISM_KV_SYNC_METHOD(BatchGet); \
  PRISM_KV_SYNC_METHOD(BatchSet); \
  PRISM_KV_SYNC_METHOD(BatchDelete)
