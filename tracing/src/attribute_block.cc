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

std::shared_ptr<const AttributeBlock> AttributeBlock::Extend(
    std::shared_ptr<const AttributeBlock> base, Attributes more) {
  if (!base) return Make(std::move(more));
  const uint64_t more_bits = internal::Canonicalize(more);
  const bool extends = internal::Disjoint(*base, more, more_bits);
  Attributes all;
  all.reserve(base->size() + more.size());
  all.insert(all.end(), base->attributes().begin(), base->attributes().end());
  for (auto& kv : more) all.push_back(std::move(kv));
  // Disjoint lists of canonical keys stay canonical (Make checks anyway).
  auto block = std::const_pointer_cast<AttributeBlock>(Make(std::move(all)));
  if (extends) block->base_ = std::move(base);
  return block;
}

const AttributeValue* AttributeBlock::Find(std::string_view key) const {
  if (key.empty() || (key_bits_ & internal::KeyBit(key)) == 0) return nullptr;
  const KeyValue* kv = internal::FindKey(attributes_, key);
  return kv ? &kv->value : nullptr;
}

const std::string& AttributeBlock::EncodeOnce(size_t i, EncodeFn encode) const {
  std::call_once(once_[i], [&] {
    encode(attributes_, encoded_[i]);
    encoded_ready_[i].store(true, std::memory_order_release);
  });
  return encoded_[i];
}

namespace internal {
bool Overlaps(const Attributes& entries, size_t from, const Attributes& attrs,
              uint64_t attrs_bits) {
  for (size_t i = from; i < entries.size(); ++i) {
    const AttributeKey& key = entries[i].key;
    if ((attrs_bits & KeyBit(key.view())) != 0 && FindKey(attrs, key.view())) return true;
  }
  return false;
}

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
