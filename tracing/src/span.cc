#include "prism/tracing/span.h"

#include <cxxabi.h>

#include <mutex>
#include <typeinfo>
#include <vector>

#include "prism/tracing/diagnostics.h"
#include "shared.h"

namespace prism::tracing {
namespace {

void Truncate(AttributeValue& value, uint32_t max_length) {
  if (max_length == std::numeric_limits<uint32_t>::max()) return;
  if (auto* s = std::get_if<std::string>(&value)) {
    if (s->size() > max_length) s->resize(max_length);
  } else if (auto* v = std::get_if<std::vector<std::string>>(&value)) {
    for (auto& e : *v) {
      if (e.size() > max_length) e.resize(max_length);
    }
  }
}

// Spans that get attributes usually get several: skip the 1-2-4 growth.
inline void MakeRoom(Attributes& a) {
  if (a.size() == a.capacity() && a.capacity() < 8) a.reserve(8);
}

}  // namespace

namespace internal {
void PutAttribute(Attributes& attrs, uint32_t& dropped, uint32_t max_count, uint32_t max_length,
                  AttributeKey&& key, AttributeValue&& value, uint64_t* key_bits) {
  if (key.empty()) return;  // the spec forbids empty keys
  Truncate(value, max_length);
  const uint64_t bit = KeyBit(key.view());
  if (key_bits == nullptr || (*key_bits & bit) != 0) {
    if (KeyValue* kv = FindKey(attrs, key.view())) {
      kv->value = std::move(value);
      return;
    }
  }
  if (attrs.size() >= max_count) {
    ++dropped;
    return;
  }
  MakeRoom(attrs);
  attrs.emplace_back(std::move(key), std::move(value));
  if (key_bits != nullptr) *key_bits |= bit;
}

namespace {
// Canonicalize's general case: some key is empty or shares its KeyBit with
// an earlier one (a repeat, or two different keys that collide).
uint64_t CanonicalizeSlow(Attributes& attrs) {
  uint64_t bits = 0;
  for (size_t i = 0; i < attrs.size(); ++i) {
    bool drop = attrs[i].key.empty();
    if (!drop) {
      const uint64_t bit = KeyBit(attrs[i].key.view());
      // A clear bit proves the key is new; a set one may be a collision of
      // two different keys, so compare before merging.
      if (bits & bit) {
        for (size_t j = 0; j < i && !drop; ++j) {
          if (attrs[j].key == attrs[i].key) {
            attrs[j].value = std::move(attrs[i].value);
            drop = true;
          }
        }
      }
      bits |= bit;
    }
    if (drop) attrs.erase(attrs.begin() + static_cast<std::ptrdiff_t>(i--));
  }
  return bits;
}
}  // namespace

uint64_t Canonicalize(Attributes& attrs) {
  // The usual list has non-empty keys with distinct bits: one pass proves it
  // canonical. Callgrind, BM_ProxyRequestShape, per proxied request: 356
  // instructions, against 552 for the general loop alone and 320 for the
  // bare KeyBit pass that took lists unchecked before.
  uint64_t bits = 0;
  for (const auto& kv : attrs) {
    if (kv.key.empty()) return CanonicalizeSlow(attrs);
    const uint64_t bit = KeyBit(kv.key.view());
    if (bits & bit) return CanonicalizeSlow(attrs);
    bits |= bit;
  }
  return bits;
}
}  // namespace internal

Span::Span(std::unique_ptr<SpanData> data, std::shared_ptr<const internal::TracerShared> tracer,
           int64_t start_steady_ns, uint64_t key_bits)
    : data_(std::move(data)),
      tracer_(std::move(tracer)),
      start_steady_ns_(start_steady_ns),
      key_bits_(key_bits) {}

Span::Span(Span&& other) noexcept
    : data_(std::move(other.data_)),
      tracer_(std::move(other.tracer_)),
      start_steady_ns_(other.start_steady_ns_),
      key_bits_(other.key_bits_),
      context_(std::move(other.context_)),
      deferred_(other.deferred_) {}

Span& Span::operator=(Span&& other) noexcept {
  if (this != &other) {
    End();
    data_ = std::move(other.data_);
    tracer_ = std::move(other.tracer_);
    start_steady_ns_ = other.start_steady_ns_;
    key_bits_ = other.key_bits_;
    context_ = std::move(other.context_);
    deferred_ = other.deferred_;
  }
  return *this;
}

void Span::SetAttribute(AttributeKey key, AttributeValue value) {
  if (!data_) return;
  Put(std::move(key), std::move(value));
}

void Span::Put(AttributeKey&& key, AttributeValue&& value) {
  const SpanLimits& l = tracer_->provider->limits;
  uint32_t max_count = l.attribute_count;
  if (const AttributeBlock* block = data_->shared_attributes.get()) {
    // A key the block holds changes in the span's own copy of the block.
    if (block->Find(key.view())) {
      internal::Flatten(*data_);
    } else {
      max_count -= static_cast<uint32_t>(block->size());  // Start made sure it fits
    }
  }
  internal::PutAttribute(data_->attributes, data_->dropped_attributes_count, max_count,
                         l.attribute_value_length, std::move(key), std::move(value), &key_bits_);
}

bool Span::Fits(const AttributeKey& key, uint64_t& bit) const {
  if (key.empty()) return false;
  const AttributeBlock* block = data_->shared_attributes.get();
  if (data_->attributes.size() + (block ? block->size() : 0) >=
      tracer_->provider->limits.attribute_count) {
    return false;
  }
  bit = internal::KeyBit(key.view());
  // key_bits_ covers the block's keys and the span's own: a clear bit
  // proves the key is in neither. A set one is often another key's (one
  // bit in 64: the proxy's SERVER span has a dozen keys), so look.
  if ((key_bits_ & bit) == 0) return true;
  if (block && block->Find(key.view())) return false;
  return internal::FindKey(data_->attributes, key.view()) == nullptr;
}

// V: std::string_view (copied once, after truncation), std::string (moved)
// or int64_t.
template <typename V>
void Span::PutNew(AttributeKey&& key, V&& value) {
  using D = std::remove_cvref_t<V>;
  auto stored = [&]() -> decltype(auto) {
    if constexpr (std::is_same_v<D, std::string_view>) {
      return std::string(value);
    } else {
      return std::forward<V>(value);
    }
  };
  uint64_t bit = 0;
  if (!Fits(key, bit)) {
    Put(std::move(key), AttributeValue(stored()));
    return;
  }
  if constexpr (!std::is_same_v<D, int64_t>) {
    const uint32_t max_length = tracer_->provider->limits.attribute_value_length;
    if (value.size() > max_length) {
      if constexpr (std::is_same_v<D, std::string_view>) {
        value = value.substr(0, max_length);
      } else {
        value.resize(max_length);
      }
    }
  }
  MakeRoom(data_->attributes);
  data_->attributes.emplace_back(std::move(key), stored());
  key_bits_ |= bit;
}

void Span::PutString(AttributeKey&& key, std::string_view value) { PutNew(std::move(key), value); }
void Span::PutString(AttributeKey&& key, std::string&& value) {
  PutNew(std::move(key), std::move(value));
}
void Span::PutInt(AttributeKey&& key, int64_t value) { PutNew(std::move(key), value); }

void Span::SetAttributes(Attributes attributes) {
  if (!data_) return;
  const SpanLimits& l = tracer_->provider->limits;
  const AttributeBlock* block = data_->shared_attributes.get();
  if (data_->attributes.empty() &&
      attributes.size() + (block ? block->size() : 0) <= l.attribute_count &&
      internal::ValuesWithin(attributes, l.attribute_value_length)) {
    const uint64_t bits = internal::Canonicalize(attributes);
    if (!block || internal::Disjoint(*block, attributes, bits)) {
      key_bits_ = bits | (block ? block->key_bits() : 0);
      data_->attributes = std::move(attributes);
      return;
    }
  }
  for (auto& kv : attributes) Put(std::move(kv.key), std::move(kv.value));
}

void Span::SetAttributes(const SharedAttributes& block) {
  if (!data_ || !block) return;
  const SpanLimits& l = tracer_->provider->limits;
  const AttributeBlock* current = data_->shared_attributes.get();
  if (block->size() + data_->attributes.size() <= l.attribute_count &&
      block->longest_value() <= l.attribute_value_length) {
    if (!current && data_->attributes.empty()) {
      data_->shared_attributes = block;
      key_bits_ = block->key_bits();
      return;
    }
    // A block that extends the span's (AttributeBlock::Extend) replaces it
    // when the span's own attributes hold none of the added keys.
    if (current && block->base() == current &&
        !internal::Overlaps(block->attributes(), current->size(), data_->attributes, key_bits_)) {
      data_->shared_attributes = block;
      key_bits_ |= block->key_bits();
      return;
    }
  }
  for (const auto& kv : block->attributes()) Put(AttributeKey(kv.key), AttributeValue(kv.value));
}

void Span::AddEvent(std::string_view name, Attributes attributes) {
  if (!data_) return;
  AddEvent(name, internal::Now().wall_nanos, std::move(attributes));
}

void Span::AddEvent(std::string_view name, uint64_t time_unix_nano, Attributes attributes) {
  if (!data_) return;
  const SpanLimits& l = tracer_->provider->limits;
  if (data_->events.size() >= l.event_count) {
    ++data_->dropped_events_count;
    return;
  }
  Event e;
  e.name = std::string(name);
  e.time_unix_nano = time_unix_nano;
  if (attributes.size() <= l.event_attribute_count &&
      l.attribute_value_length == std::numeric_limits<uint32_t>::max()) {
    e.attributes = std::move(attributes);
  } else {
    for (auto& kv : attributes) {
      internal::PutAttribute(e.attributes, e.dropped_attributes_count, l.event_attribute_count,
                             l.attribute_value_length, std::move(kv.key), std::move(kv.value));
    }
  }
  data_->events.push_back(std::move(e));
}

void Span::AddLink(const SpanContext& context, Attributes attributes) {
  if (!data_ || !context.IsValid()) return;
  const SpanLimits& l = tracer_->provider->limits;
  if (data_->links.size() >= l.link_count) {
    ++data_->dropped_links_count;
    return;
  }
  Link link;
  link.context = context;
  for (auto& kv : attributes) {
    internal::PutAttribute(link.attributes, link.dropped_attributes_count, l.link_attribute_count,
                           l.attribute_value_length, std::move(kv.key), std::move(kv.value));
  }
  data_->links.push_back(std::move(link));
}

void Span::SetStatus(StatusCode code, std::string_view description) {
  if (!data_ || code == StatusCode::kUnset) return;
  if (data_->status == StatusCode::kOk) return;  // Ok is final
  data_->status = code;
  if (code == StatusCode::kError) {
    data_->status_message = std::string(description);
  } else {
    data_->status_message.clear();
  }
}

void Span::UpdateName(std::string_view name) {
  if (data_) data_->name = std::string(name);
}

void Span::RecordException(std::string_view type, std::string_view message,
                           std::string_view stacktrace) {
  if (!data_) return;
  RecordException(internal::Now().wall_nanos, type, message, stacktrace);
}

void Span::RecordException(uint64_t time_unix_nano, std::string_view type, std::string_view message,
                           std::string_view stacktrace) {
  if (!data_) return;
  Attributes attrs;
  attrs.reserve(3);
  attrs.push_back({"exception.type", std::string(type)});
  attrs.push_back({"exception.message", std::string(message)});
  if (!stacktrace.empty()) attrs.push_back({"exception.stacktrace", std::string(stacktrace)});
  AddEvent("exception", time_unix_nano, std::move(attrs));
}

void Span::RecordException(const std::exception& e) {
  if (!data_) return;
  const char* mangled = typeid(e).name();
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string type = (status == 0 && demangled) ? demangled : mangled;
  std::free(demangled);
  RecordException(type, e.what());
}

void Span::End() {
  if (!data_) return;
  int64_t elapsed = internal::SteadyNanos() - start_steady_ns_;
  Finish(data_->start_unix_nano + static_cast<uint64_t>(elapsed < 0 ? 0 : elapsed));
}

void Span::End(uint64_t end_unix_nano) {
  if (!data_) return;
  Finish(end_unix_nano);
}

void Span::Finish(uint64_t end_unix_nano) {
  data_->end_unix_nano = end_unix_nano;
  // Keep the context for callers that still read it after End().
  context_ = data_->context;
  internal::GlobalCounters().spans_ended.fetch_add(1, std::memory_order_relaxed);
  // tracer_ holds the pipeline alive across OnEnd, even if this span was
  // its last user; it is released only afterwards.
  SpanProcessor* processor = tracer_->provider->processor.get();
  if (processor) {
    processor->OnEnd(std::move(data_));
  } else {
    data_.reset();
  }
  tracer_.reset();
}

uint64_t NowUnixNano() { return internal::Now().wall_nanos; }

namespace internal {
namespace {
constexpr size_t kRecycledPerThread = 32;
// Records move between a thread and the shared pool this many at a time,
// so the pool's lock is taken once per batch, not per span.
constexpr size_t kBatch = 16;
constexpr size_t kSharedMax = 1024;
// A record whose vectors grew past these is freed, not kept: the pools
// hold ordinary spans' capacity only.
constexpr size_t kMaxKeptAttributes = 32;
constexpr size_t kMaxKeptName = 256;
constexpr size_t kMaxKeptEvents = 8;  // and links

// A thread that exits frees what it kept (thread_local destructor).
struct RecycledSpans {
  std::vector<std::unique_ptr<SpanData>> spans;
};
thread_local RecycledSpans t_recycled;

// Only ever try_lock()ed: a thread never waits for it (a busy pool means
// one more malloc or free), and a child forked while another thread held it
// simply never uses it.
struct SharedPool {
  std::mutex mu;
  std::vector<std::unique_ptr<SpanData>> spans;
};
SharedPool& Shared() {
  static SharedPool* pool =
      new SharedPool;  // never destroyed: used by thread_local destructors' threads
  return *pool;
}

// Moves up to `n` records from the back of `from` to `to`.
void MoveSome(std::vector<std::unique_ptr<SpanData>>& from,
              std::vector<std::unique_ptr<SpanData>>& to, size_t n) {
  for (; n > 0 && !from.empty(); --n) {
    to.push_back(std::move(from.back()));
    from.pop_back();
  }
}
}  // namespace

std::unique_ptr<SpanData> NewSpanData() {
  auto& local = t_recycled.spans;
  if (local.empty()) {
    SharedPool& shared = Shared();
    if (shared.mu.try_lock()) {
      MoveSome(shared.spans, local, kBatch);
      shared.mu.unlock();
    }
    if (local.empty()) return std::make_unique<SpanData>();
  }
  std::unique_ptr<SpanData> s = std::move(local.back());
  local.pop_back();
  return s;
}

}  // namespace internal

void RecycleSpanData(std::unique_ptr<SpanData> span) {
  if (!span) return;
  SpanData& s = *span;
  if (s.attributes.capacity() > internal::kMaxKeptAttributes ||
      s.name.capacity() > internal::kMaxKeptName ||
      s.events.capacity() > internal::kMaxKeptEvents ||
      s.links.capacity() > internal::kMaxKeptEvents) {
    return;  // freed here
  }
  auto& local = internal::t_recycled.spans;
  if (local.size() >= internal::kRecycledPerThread) {
    internal::SharedPool& shared = internal::Shared();
    if (!shared.mu.try_lock()) return;  // freed here
    if (shared.spans.size() + internal::kBatch <= internal::kSharedMax) {
      internal::MoveSome(local, shared.spans, internal::kBatch);
    }
    shared.mu.unlock();
    if (local.size() >= internal::kRecycledPerThread) return;  // the pool is full: freed here
  }
  s.context = SpanContext();
  s.parent_span_id = SpanId();
  s.parent_is_remote = false;
  s.name.clear();
  s.kind = SpanKind::kInternal;
  s.start_unix_nano = s.end_unix_nano = 0;
  s.shared_attributes.reset();
  s.attributes.clear();
  s.dropped_attributes_count = 0;
  s.events.clear();
  s.dropped_events_count = 0;
  s.links.clear();
  s.dropped_links_count = 0;
  s.status = StatusCode::kUnset;
  s.status_message.clear();
  s.origin.reset();
  local.push_back(std::move(span));
}

}  // namespace prism::tracing
