#include <algorithm>

#include "prism/tracing/attributes.h"
#include "shared.h"

namespace prism::tracing {

std::shared_ptr<const AttributeBlock> AttributeBlock::Make(Attributes attributes) {
  std::shared_ptr<AttributeBlock> block(new AttributeBlock());
  block->key_bits_ = internal::Canonicalize(attributes);
  for (const auto& kv : attributes) {
    if (const auto* s = std::get_if<std::string>(&kv.value)) {
      block->longest_value_ = std::max(block->longest_value_, s->size());
    } else if (const auto* v = std::get_if<std::vector<std::string>>(&kv.value)) {
      for (const auto& e : *v) block->longest_value_ = std::max(block->longest_value_, e.size());
    }
  }
  block->attributes_ = std::move(attributes);
  return block;
}

const AttributeValue* AttributeBlock::Find(std::string_view key) const {
  if (key.empty() || (key_bits_ & internal::KeyBit(key)) == 0) return nullptr;
  for (const auto& kv : attributes_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

const std::string& AttributeBlock::Encoded(Format format, EncodeFn encode) const {
  const auto i = static_cast<size_t>(format);
  std::call_once(once_[i], [&] { encode(attributes_, encoded_[i]); });
  return encoded_[i];
}

namespace internal {
bool Disjoint(const AttributeBlock& block, const Attributes& attrs, uint64_t attrs_bits) {
  if ((block.key_bits() & attrs_bits) == 0) return true;
  for (const auto& kv : attrs) {
    if (block.Find(kv.key.view())) return false;
  }
  return true;
}

void Flatten(SpanData& s) {
  if (!s.shared_attributes) return;
  SharedAttributes block = std::move(s.shared_attributes);
  Attributes merged;
  merged.reserve(block->size() + s.attributes.size());
  merged.insert(merged.end(), block->attributes().begin(), block->attributes().end());
  for (auto& kv : s.attributes) merged.push_back(std::move(kv));
  s.attributes = std::move(merged);
}
}  // namespace internal

}  // namespace prism::tracing
