// Fuzzes the proxy's request check before forwarding (wire.h ReadRequest):
// raw bytes as any of the request shapes. Whatever it accepts has a
// namespace within the limit, valid UTF-8, pointing into the input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>

#include "prism/plugin/limits.h"
#include "wire.h"

using prism::proxy::RequestShape;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the shape, the rest is the request.
  constexpr RequestShape kShapes[] = {
      RequestShape::kAny,   RequestShape::kKey,     RequestShape::kSet,      RequestShape::kKeys,
      RequestShape::kItems, RequestShape::kPublish, RequestShape::kSubscribe};
  const RequestShape shape = kShapes[data[0] % std::size(kShapes)];
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  // A field appended to a well-formed message is the one read back.
  if (auto field = prism::proxy::LastStringField(bytes, 3)) {
    std::string appended(bytes);
    prism::proxy::AppendStringField(appended, 3, "x");
    auto again = prism::proxy::LastStringField(appended, 3);
    if (!again || *again != "x") abort();
  }

  auto ns = prism::proxy::ReadRequest(bytes, shape);
  if (!ns.ok()) {
    if (ns.status().message().empty()) abort();  // every refusal says why
    return 0;
  }
  if (ns->size() > prism::plugin::kMaxNamespaceBytes) abort();
  if (!prism::proxy::IsValidUtf8(*ns)) abort();
  if (!ns->empty() &&
      (ns->data() < bytes.data() || ns->data() + ns->size() > bytes.data() + bytes.size())) {
    abort();
  }
  // What is valid for one shape's fields is valid structure for any shape.
  if (!prism::proxy::ReadRequest(bytes, RequestShape::kAny).ok()) abort();
  return 0;
}
