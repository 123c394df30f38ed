#include "prism/tracing/adaptive.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"
#include "shared.h"

namespace prism::tracing {

std::string_view ToString(SamplingReason reason) {
  switch (reason) {
    case SamplingReason::kParent:
      return "parent";
    case SamplingReason::kRatio:
      return "ratio";
    case SamplingReason::kError:
      return "error";
    case SamplingReason::kSlow:
      return "slow";
    case SamplingReason::kNone:
      break;
  }
  return "";
}

std::optional<SamplingReason> ParseSamplingReason(std::string_view s) {
  for (auto r : {SamplingReason::kParent, SamplingReason::kRatio, SamplingReason::kError,
                 SamplingReason::kSlow}) {
    if (s == ToString(r)) return r;
  }
  return std::nullopt;
}

namespace {

bool ParseNumber(std::string_view text, double min, double max, double* out) {
  std::string t(text);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !(v >= min && v <= max)) return false;
  *out = v;
  return true;
}

}  // namespace

std::optional<AdaptiveOptions> AdaptiveOptions::Parse(std::string_view arg, std::string* error) {
  AdaptiveOptions o;
  for (const std::string& item : env::SplitList(std::string(arg))) {
    size_t eq = item.find('=');
    std::string key = env::Trim(item.substr(0, eq));
    std::string value = eq == std::string::npos ? "" : env::Trim(item.substr(eq + 1));
    auto bad = [&](std::string_view expected) {
      if (error) *error = "'" + key + "=" + value + "': expected " + std::string(expected);
      return std::nullopt;
    };
    double v = 0;
    if (key == "ratio") {
      if (!ParseNumber(value, 0, 1, &v)) return bad("a ratio in [0, 1]");
      o.ratio = v;
    } else if (key == "slow_ms") {
      if (!ParseNumber(value, 0, 86'400'000, &v)) return bad("milliseconds in [0, 86400000]");
      o.slow = std::chrono::milliseconds(static_cast<int64_t>(v));
    } else if (key == "buffer_mb") {
      if (!ParseNumber(value, 1, 65536, &v)) return bad("MiB in [1, 65536]");
      o.buffer_bytes = static_cast<size_t>(v * 1024 * 1024);
    } else if (key == "wait_ms") {
      if (!ParseNumber(value, 1, 600'000, &v)) return bad("milliseconds in [1, 600000]");
      o.decision_wait = std::chrono::milliseconds(static_cast<int64_t>(v));
    } else if (key == "timeout_ms") {
      if (!ParseNumber(value, 1, 86'400'000, &v)) return bad("milliseconds in [1, 86400000]");
      o.trace_timeout = std::chrono::milliseconds(static_cast<int64_t>(v));
    } else if (key == "role") {
      if (value == "head") {
        o.role = Role::kHead;
      } else if (value == "downstream") {
        o.role = Role::kDownstream;
      } else {
        return bad("head or downstream");
      }
    } else {
      if (error) {
        *error = "unknown key '" + key + "' (ratio, slow_ms, buffer_mb, wait_ms, timeout_ms, role)";
      }
      return std::nullopt;
    }
  }
  return o;
}

std::optional<AdaptiveOptions> AdaptiveOptionsFromEnvironment(AdaptiveOptions::Role role,
                                                              const env::Defaults* defaults) {
  auto name = env::GetEnum("OTEL_TRACES_SAMPLER", defaults);
  if (!name || *name != "prism_adaptive") return std::nullopt;
  std::string arg = env::Get("OTEL_TRACES_SAMPLER_ARG", defaults).value_or("");
  bool role_given = arg.find("role") != std::string::npos;
  std::string error;
  std::optional<AdaptiveOptions> o = AdaptiveOptions::Parse(arg, &error);
  if (!o) {
    internal::Log(internal::LogLevel::kWarn, "OTEL_TRACES_SAMPLER_ARG=" + arg +
                                                 " for prism_adaptive: " + error +
                                                 "; using the defaults");
    o = AdaptiveOptions();
    role_given = false;
  }
  if (!role_given) o->role = role;
  return o;
}

std::string AdaptiveCounters::ToString() const {
  return "traces=" + std::to_string(traces) + " kept(parent=" + std::to_string(kept_parent) +
         " ratio=" + std::to_string(kept_ratio) + " error=" + std::to_string(kept_error) +
         " slow=" + std::to_string(kept_slow) + " trigger=" + std::to_string(kept_trigger) +
         ") dropped=" + std::to_string(dropped) + " evicted=" + std::to_string(evicted) +
         " evicted_spans=" + std::to_string(evicted_spans) +
         " timed_out=" + std::to_string(timed_out) + " late_kept=" + std::to_string(late_kept) +
         " late_dropped=" + std::to_string(late_dropped) +
         " unmatched_keeps=" + std::to_string(unmatched_keeps) +
         " buffered_spans=" + std::to_string(buffered_spans) +
         " buffered_bytes=" + std::to_string(buffered_bytes) +
         " peak_buffered_bytes=" + std::to_string(peak_buffered_bytes);
}

// ---------------------------------------------------------------------------

namespace {

using SpanPtr = std::unique_ptr<SpanData>;

struct TraceIdHash {
  // Trace ids are random (W3C Level 2): their low bytes hash well as they are.
  size_t operator()(const TraceId& t) const {
    uint64_t lo;
    std::memcpy(&lo, t.bytes().data() + 8, sizeof(lo));
    return static_cast<size_t>(lo ^ (lo >> 31));
  }
};

bool IsLocalRoot(const SpanData& s) { return !s.parent_span_id.IsValid() || s.parent_is_remote; }

size_t StringBytes(const std::string& s) { return s.capacity() > 15 ? s.capacity() : 0; }

// A cheap over-estimate of what a span holds on the heap.
size_t EstimateBytes(const SpanData& s) {
  size_t n = sizeof(SpanData) + StringBytes(s.name) + StringBytes(s.status_message) +
             s.attributes.capacity() * sizeof(KeyValue) + s.events.size() * sizeof(Event) +
             s.links.size() * sizeof(Link);
  for (const auto& kv : s.attributes) {
    if (const auto* str = std::get_if<std::string>(&kv.value)) {
      n += StringBytes(*str);
    } else if (const auto* strs = std::get_if<std::vector<std::string>>(&kv.value)) {
      n += strs->size() * sizeof(std::string);
      for (const auto& e : *strs) n += StringBytes(e);
    } else if (!std::holds_alternative<bool>(kv.value) &&
               !std::holds_alternative<int64_t>(kv.value) &&
               !std::holds_alternative<double>(kv.value)) {
      n += 64;  // numeric arrays: rare, a rough figure
    }
  }
  for (const auto& e : s.events) {
    n += StringBytes(e.name) + e.attributes.capacity() * sizeof(KeyValue);
    for (const auto& kv : e.attributes) {
      if (const auto* str = std::get_if<std::string>(&kv.value)) n += StringBytes(*str);
    }
  }
  return n;
}

enum class Decision : uint8_t { kPending, kKept };

struct Entry {
  Decision state = Decision::kPending;
  SamplingReason reason = SamplingReason::kNone;
  bool root_ended = false;
  bool replayed = false;  // kept before its spans are recorded (KeepReplayed)
  int64_t created_ns = 0;
  int64_t wait_until_ns = 0;  // downstream: root ended, waiting for Keep()
  size_t bytes = 0;
  std::vector<SpanPtr> spans;
  std::vector<std::unique_ptr<DeferredSpan>> deferred;  // EndDeferred: recorded only if kept
};

using DeferredList = std::vector<std::unique_ptr<DeferredSpan>>;

struct Expiry {
  TraceId id;
  int64_t at_ns;
};

constexpr size_t kShards = 16;

// Dropped traces are not kept in the map: a drop is remembered by writing
// the trace id's random low 64 bits into a direct-mapped slot (a later drop
// that maps to the same slot forgets it). 16 shards x 2048 slots remember
// the last ~32,000 drops at 256 KiB, for spans that end after their trace's
// drop - in the proxy there are almost none, in a plugin they are a late
// caller's. A forgotten drop lets such a span start an orphan that the
// trace timeout later keeps as "slow" (counted in timed_out).
constexpr size_t kDropSlots = 2048;
// Map nodes of decided traces kept for reuse, per shard.
constexpr size_t kSpareNodes = 64;

uint64_t IdLow64(const TraceId& id) {
  uint64_t lo;
  std::memcpy(&lo, id.bytes().data() + 8, sizeof(lo));
  return lo;
}

struct Shard {
  std::mutex mu;
  std::unordered_map<TraceId, Entry, TraceIdHash> traces;
  std::deque<Expiry> pending_order;  // by creation (lazy: entries may be decided)
  std::deque<Expiry> kept_order;     // kept decisions, for forgetting
  std::array<uint64_t, kDropSlots> dropped_ids{};
  std::vector<std::unordered_map<TraceId, Entry, TraceIdHash>::node_type> spare;

  size_t DropSlot(uint64_t lo) const { return (lo >> 8) % kDropSlots; }
  void RememberDrop(const TraceId& id) {
    uint64_t lo = IdLow64(id);
    dropped_ids[DropSlot(lo)] = lo;
  }
  bool WasDropped(const TraceId& id) const {
    uint64_t lo = IdLow64(id);
    return lo != 0 && dropped_ids[DropSlot(lo)] == lo;
  }
};

}  // namespace

struct AdaptiveSampling::State {
  explicit State(AdaptiveOptions o) : options(std::move(o)) {
    if (!options.steady_now_ns) options.steady_now_ns = [] { return internal::SteadyNanos(); };
    threshold = consistent_sampling::ThresholdForProbability(options.ratio);
  }

  AdaptiveOptions options;
  uint64_t threshold;
  std::unique_ptr<SpanProcessor> next;
  std::array<Shard, kShards> shards;

  // Kept traces by reason (indexed by SamplingReason).
  std::array<std::atomic<uint64_t>, 5> kept{};
  std::atomic<uint64_t> traces{0}, kept_trigger{0}, dropped{0}, evicted{0}, evicted_spans{0},
      timed_out{0}, late_kept{0}, late_dropped{0}, unmatched_keeps{0};
  std::atomic<int64_t> buffered_bytes{0}, buffered_spans{0};
  std::atomic<uint64_t> peak_bytes{0};
  std::atomic<bool> shut_down{false};

  std::mutex sweeper_mu;
  std::condition_variable sweeper_cv;
  bool sweeper_stop = false;
  std::thread sweeper;

  Shard& ShardOf(const TraceId& id) { return shards[TraceIdHash()(id) % kShards]; }
  int64_t Now() const { return options.steady_now_ns(); }

  void CountKept(SamplingReason r, bool trigger) {
    (trigger ? kept_trigger : kept[static_cast<size_t>(r)]).fetch_add(1, std::memory_order_relaxed);
  }

  void Unbuffer(const Entry& e) {
    buffered_bytes.fetch_sub(static_cast<int64_t>(e.bytes), std::memory_order_relaxed);
    buffered_spans.fetch_sub(static_cast<int64_t>(e.spans.size() + e.deferred.size()),
                             std::memory_order_relaxed);
  }

  using Map = std::unordered_map<TraceId, Entry, TraceIdHash>;

  // Moves the spans of `e` to `out`; `e` keeps its vector's capacity.
  static void TakeSpans(Entry& e, std::vector<SpanPtr>& out) {
    for (auto& span : e.spans) out.push_back(std::move(span));
    e.spans.clear();
  }

  // A new pending entry for `id` (shard locked), from the shard's spare
  // nodes when it has one: a request costs no map-node or span-vector
  // allocation once the shard is warm.
  Map::iterator NewEntryLocked(Shard& sh, const TraceId& id, int64_t now) {
    Map::iterator it;
    if (!sh.spare.empty()) {
      Map::node_type node = std::move(sh.spare.back());
      sh.spare.pop_back();
      node.key() = id;
      Entry& e = node.mapped();
      e.state = Decision::kPending;
      e.reason = SamplingReason::kNone;
      e.root_ended = false;
      e.replayed = false;
      e.wait_until_ns = 0;
      e.bytes = 0;
      it = sh.traces.insert(std::move(node)).position;
    } else {
      it = sh.traces.try_emplace(id).first;
      it->second.spans.reserve(4);
    }
    it->second.created_ns = now;
    return it;
  }

  // Keeps the trace of `it` (shard locked); its spans move to `out`, its
  // deferred spans to `deferred_out` (to be recorded, Record, after the lock).
  void KeepLocked(Shard& sh, Map::iterator it, SamplingReason r, std::vector<SpanPtr>& out,
                  DeferredList& deferred_out) {
    Entry& e = it->second;
    Unbuffer(e);
    e.state = Decision::kKept;
    e.reason = r;
    TakeSpans(e, out);
    if (!e.deferred.empty()) {
      e.replayed = true;  // what they record comes after the decision by design
      for (auto& d : e.deferred) deferred_out.push_back(std::move(d));
      e.deferred.clear();
    }
    e.bytes = 0;
    sh.kept_order.push_back({it->first, Now() + Ms(options.remember)});
  }

  // Drops the trace of `it` (shard locked): the entry goes, the drop is
  // remembered in the shard's slots; its spans move to `out`, to be freed
  // without the lock.
  void DropLocked(Shard& sh, Map::iterator it, std::vector<SpanPtr>& out) {
    Entry& e = it->second;
    Unbuffer(e);
    TakeSpans(e, out);
    e.deferred.clear();  // never recorded: freed
    sh.RememberDrop(it->first);
    Map::node_type node = sh.traces.extract(it);
    if (sh.spare.size() < kSpareNodes) sh.spare.push_back(std::move(node));
  }

  static int64_t Ms(std::chrono::milliseconds d) { return d.count() * 1'000'000; }

  // Hands kept spans to the exporters (no lock held).
  void Export(std::vector<SpanPtr>& spans, SamplingReason reason) {
    for (auto& s : spans) {
      MarkSampled(*s, reason);
      if (next) next->OnEnd(std::move(s));
    }
    spans.clear();
  }

  // Records kept deferred spans (no lock held): their spans end into OnEnd,
  // find the trace kept and are exported.
  static void Record(DeferredList& deferred) {
    for (auto& d : deferred) d->Record();
    deferred.clear();
  }

  void MarkSampled(SpanData& s, SamplingReason reason) {
    const SpanContext& c = s.context;
    s.context = SpanContext(c.trace_id(), c.span_id(), c.flags() | trace_flags::kSampled,
                            c.IsRemote(), c.trace_state());
    if (options.role == AdaptiveOptions::Role::kHead && IsLocalRoot(s) &&
        reason != SamplingReason::kNone && !s.FindAttribute(kSamplingReasonKey.view())) {
      s.attributes.emplace_back(kSamplingReasonKey, std::string(ToString(reason)));
    }
  }

  // The pending entry of `id` (shard locked), made if there is none; end()
  // when the trace was dropped (a late span).
  Map::iterator FindOrAddLocked(Shard& sh, const TraceId& id) {
    auto it = sh.traces.find(id);
    if (it != sh.traces.end()) return it;
    if (sh.WasDropped(id)) return sh.traces.end();
    const int64_t now = Now();
    it = NewEntryLocked(sh, id, now);
    sh.pending_order.push_back({id, now});
    return it;
  }

  // Counts `bytes` more held for entry `e` (shard locked).
  void AccountLocked(Entry& e, size_t bytes) {
    e.bytes += bytes;
    buffered_spans.fetch_add(1, std::memory_order_relaxed);
    const int64_t total =
        buffered_bytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed) +
        static_cast<int64_t>(bytes);
    if (static_cast<uint64_t>(total) > peak_bytes.load(std::memory_order_relaxed)) {
      peak_bytes.store(static_cast<uint64_t>(total), std::memory_order_relaxed);
    }
  }

  // The local root of pending trace `it` ended (shard locked): `keep` (an
  // error, or its latency) keeps the trace; otherwise a head drops it and a
  // downstream process waits for its caller's verdict. Returns `keep`.
  SamplingReason RootEndedLocked(Shard& sh, Map::iterator it, SamplingReason keep,
                                 std::vector<SpanPtr>& out, DeferredList& to_record) {
    Entry& e = it->second;
    e.root_ended = true;
    if (keep != SamplingReason::kNone) {
      CountKept(keep, false);
      KeepLocked(sh, it, keep, out, to_record);
    } else if (options.role == AdaptiveOptions::Role::kHead) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      DropLocked(sh, it, out);
    } else {
      e.wait_until_ns = Now() + Ms(options.decision_wait);
    }
    return keep;
  }

  // The keep a span ending with `error` and lasting `duration_ns` asks for.
  SamplingReason KeepFor(bool error, bool root, uint64_t duration_ns) const {
    if (error) return SamplingReason::kError;
    if (root && options.slow.count() > 0 &&
        duration_ns >= static_cast<uint64_t>(Ms(options.slow))) {
      return SamplingReason::kSlow;
    }
    return SamplingReason::kNone;
  }

  void OnEnd(SpanPtr span) {
    const TraceId id = span->context.trace_id();
    const bool root = IsLocalRoot(*span);
    const bool error = span->status == StatusCode::kError;
    Shard& sh = ShardOf(id);
    // The spans this call decides, handed on or freed after the lock; one
    // vector per thread, so that costs no allocation either. (Export never
    // comes back here: the exporters' pipeline is not adaptive.)
    thread_local std::vector<SpanPtr> out;
    // Rare (a kept trace with deferred spans), and recorded after `out` is
    // done with: recording ends spans into this function again.
    DeferredList to_record;
    SamplingReason out_reason = SamplingReason::kNone;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      auto it = FindOrAddLocked(sh, id);
      if (it == sh.traces.end()) {
        late_dropped.fetch_add(1, std::memory_order_relaxed);
        out.push_back(std::move(span));  // freed below, outside the lock
      } else if (it->second.state == Decision::kKept) {
        // A replayed trace's spans come after its decision by design.
        if (!it->second.replayed) late_kept.fetch_add(1, std::memory_order_relaxed);
        out.push_back(std::move(span));
        out_reason = it->second.reason;
      } else {
        Entry& e = it->second;
        const SamplingReason keep =
            KeepFor(error, root, span->end_unix_nano - span->start_unix_nano);
        AccountLocked(e, EstimateBytes(*span));
        e.spans.push_back(std::move(span));
        if (root) {
          out_reason = RootEndedLocked(sh, it, keep, out, to_record);
        } else if (keep != SamplingReason::kNone) {
          CountKept(keep, false);
          KeepLocked(sh, it, keep, out, to_record);
          out_reason = keep;
        } else if (e.spans.size() > options.max_trace_spans) {
          evicted.fetch_add(1, std::memory_order_relaxed);
          evicted_spans.fetch_add(e.spans.size(), std::memory_order_relaxed);
          DropLocked(sh, it, out);
        }
      }
    }
    if (out_reason != SamplingReason::kNone) {
      Export(out, out_reason);
      Record(to_record);
    } else {
      // Dropped: freed without the lock, the records kept for this
      // thread's next spans.
      for (auto& s : out) RecycleSpanData(std::move(s));
      out.clear();
    }
    if (static_cast<size_t>(buffered_bytes.load(std::memory_order_relaxed)) >
        options.buffer_bytes) {
      EvictOldest();
    }
  }

  // Evicts the oldest undecided traces until the buffer is under its bound.
  void EvictOldest() {
    while (static_cast<size_t>(buffered_bytes.load(std::memory_order_relaxed)) >
           options.buffer_bytes) {
      // The shard whose oldest pending trace is the oldest overall.
      Shard* best = nullptr;
      int64_t best_at = 0;
      for (Shard& sh : shards) {
        std::lock_guard<std::mutex> lock(sh.mu);
        while (!sh.pending_order.empty()) {
          auto it = sh.traces.find(sh.pending_order.front().id);
          if (it != sh.traces.end() && it->second.state == Decision::kPending) break;
          sh.pending_order.pop_front();  // decided since: not pending any more
        }
        if (!sh.pending_order.empty() && (!best || sh.pending_order.front().at_ns < best_at)) {
          best = &sh;
          best_at = sh.pending_order.front().at_ns;
        }
      }
      if (!best) return;
      std::vector<SpanPtr> out;
      {
        std::lock_guard<std::mutex> lock(best->mu);
        if (best->pending_order.empty()) continue;
        TraceId id = best->pending_order.front().id;
        best->pending_order.pop_front();
        auto it = best->traces.find(id);
        if (it == best->traces.end() || it->second.state != Decision::kPending) continue;
        evicted.fetch_add(1, std::memory_order_relaxed);
        evicted_spans.fetch_add(it->second.spans.size() + it->second.deferred.size(),
                                std::memory_order_relaxed);
        DropLocked(*best, it, out);
      }
      for (auto& d : out) RecycleSpanData(std::move(d));
    }
  }

  // `replay`: the caller records the trace's spans after this (deferred
  // recording): nothing buffered is expected, and its spans are not late.
  void Keep(const TraceId& id, SamplingReason reason, bool trigger, bool replay = false) {
    if (!id.IsValid()) return;
    Shard& sh = ShardOf(id);
    std::vector<SpanPtr> out;
    DeferredList to_record;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      auto it = sh.traces.find(id);
      if (it == sh.traces.end()) {
        // Nothing buffered (yet): dropped or evicted already, or spans that
        // have not ended - those follow the decision when they end.
        if (!replay) unmatched_keeps.fetch_add(1, std::memory_order_relaxed);
        if (sh.WasDropped(id)) return;  // a drop is final
        it = NewEntryLocked(sh, id, Now());
      } else if (it->second.state != Decision::kPending) {
        return;  // kept already
      } else if (it->second.spans.empty() && !replay) {
        unmatched_keeps.fetch_add(1, std::memory_order_relaxed);
      }
      it->second.replayed = replay;
      CountKept(reason, trigger);
      KeepLocked(sh, it, reason, out, to_record);
    }
    Export(out, reason);
    Record(to_record);
  }

  // A head's decision not to keep a trace it recorded deferred: counted as
  // dropped; what other code buffered of it goes too, and its later spans
  // are discarded (the drop is remembered).
  void DropDeferred(const TraceId& id) {
    if (!id.IsValid()) return;
    Shard& sh = ShardOf(id);
    thread_local std::vector<SpanPtr> out;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      auto it = sh.traces.find(id);
      if (it == sh.traces.end()) {
        sh.RememberDrop(id);
      } else if (it->second.state == Decision::kPending) {
        DropLocked(sh, it, out);
      } else {
        return;  // kept already: a keep is final too
      }
      dropped.fetch_add(1, std::memory_order_relaxed);
    }
    for (auto& s : out) RecycleSpanData(std::move(s));
    out.clear();
  }

  bool EndDeferred(const TraceId& id, std::unique_ptr<DeferredSpan> span, bool error,
                   uint64_t duration_ns) {
    Shard& sh = ShardOf(id);
    std::vector<SpanPtr> out;
    DeferredList to_record;
    SamplingReason reason = SamplingReason::kNone;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      auto it = FindOrAddLocked(sh, id);
      if (it == sh.traces.end()) {
        late_dropped.fetch_add(1, std::memory_order_relaxed);
        return false;  // `span` is freed, never recorded
      }
      Entry& e = it->second;
      if (e.state == Decision::kKept) {
        // Kept before its root ended (a trigger that came first): a late span.
        late_kept.fetch_add(1, std::memory_order_relaxed);
        e.replayed = true;
        reason = e.reason;
        to_record.push_back(std::move(span));
      } else {
        AccountLocked(e, span->Bytes());
        e.deferred.push_back(std::move(span));
        reason = RootEndedLocked(sh, it, KeepFor(error, true, duration_ns), out, to_record);
      }
    }
    if (reason != SamplingReason::kNone) {
      Export(out, reason);
      Record(to_record);
    } else {
      for (auto& s : out) RecycleSpanData(std::move(s));
    }
    if (static_cast<size_t>(buffered_bytes.load(std::memory_order_relaxed)) >
        options.buffer_bytes) {
      EvictOldest();
    }
    return reason != SamplingReason::kNone;
  }

  bool IsKept(const TraceId& id) {
    Shard& sh = ShardOf(id);
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.traces.find(id);
    return it != sh.traces.end() && it->second.state == Decision::kKept;
  }

  void Sweep() {
    const int64_t now = Now();
    const int64_t timeout = Ms(options.trace_timeout);
    const int64_t youngest_deadline = std::min<int64_t>(timeout, Ms(options.decision_wait));
    // Reused shard after shard (most sweeps keep nothing and drop a few).
    std::vector<SpanPtr> drop, keep;
    DeferredList to_record;
    for (Shard& sh : shards) {
      {
        std::lock_guard<std::mutex> lock(sh.mu);
        // Undecided traces, oldest first: a downstream wait that is over, or
        // a trace that never ended.
        for (auto pit = sh.pending_order.begin(); pit != sh.pending_order.end();) {
          auto it = sh.traces.find(pit->id);
          if (it == sh.traces.end() || it->second.state != Decision::kPending) {
            pit = sh.pending_order.erase(pit);
            continue;
          }
          Entry& e = it->second;
          if (e.root_ended && e.wait_until_ns != 0 && now >= e.wait_until_ns) {
            dropped.fetch_add(1, std::memory_order_relaxed);
            DropLocked(sh, it, drop);
            pit = sh.pending_order.erase(pit);
          } else if (!e.root_ended && now - e.created_ns >= timeout) {
            timed_out.fetch_add(1, std::memory_order_relaxed);
            CountKept(SamplingReason::kSlow, false);
            KeepLocked(sh, it, SamplingReason::kSlow, keep, to_record);
            pit = sh.pending_order.erase(pit);
          } else if (now - pit->at_ns < youngest_deadline) {
            break;  // younger than any deadline: so is everything after it
          } else {
            ++pit;
          }
        }
        // Forget old kept decisions (and the oldest when there are too many).
        const size_t per_shard_cap = std::max<size_t>(1, options.max_remembered / kShards);
        while (!sh.kept_order.empty() &&
               (sh.kept_order.front().at_ns <= now || sh.kept_order.size() > per_shard_cap)) {
          auto it = sh.traces.find(sh.kept_order.front().id);
          if (it != sh.traces.end() && it->second.state == Decision::kKept) sh.traces.erase(it);
          sh.kept_order.pop_front();
        }
      }
      for (auto& d : drop) RecycleSpanData(std::move(d));  // for the next spans, not freed
      drop.clear();
      Export(keep, SamplingReason::kSlow);
      Record(to_record);
    }
  }

  void DropAll() {
    for (Shard& sh : shards) {
      std::vector<SpanPtr> drop;
      {
        std::lock_guard<std::mutex> lock(sh.mu);
        for (auto it = sh.traces.begin(); it != sh.traces.end();) {
          auto next = std::next(it);
          if (it->second.state == Decision::kPending) {
            if (!it->second.spans.empty()) dropped.fetch_add(1, std::memory_order_relaxed);
            DropLocked(sh, it, drop);
          }
          it = next;
        }
      }
    }
  }

  void StartSweeper() {
    sweeper = std::thread([this] {
      std::unique_lock<std::mutex> lock(sweeper_mu);
      while (!sweeper_stop) {
        sweeper_cv.wait_for(lock, options.sweep_interval);
        if (sweeper_stop) break;
        lock.unlock();
        Sweep();
        lock.lock();
      }
    });
  }

  void StopSweeper() {
    {
      std::lock_guard<std::mutex> lock(sweeper_mu);
      sweeper_stop = true;
    }
    sweeper_cv.notify_all();
    if (sweeper.joinable()) sweeper.join();
  }
};

namespace {

class AdaptiveSampler final : public Sampler {
 public:
  explicit AdaptiveSampler(std::shared_ptr<AdaptiveSampling::State> s) : s_(std::move(s)) {}

  SamplingResult ShouldSample(const SamplingParameters& p) const override {
    namespace cs = consistent_sampling;
    const bool head = s_->options.role == AdaptiveOptions::Role::kHead;
    SamplingResult r;
    if (p.parent.IsValid()) {
      if (!p.parent.IsRemote()) {
        // Inside this process: the trace's decision (or its deferral) holds.
        r.decision = p.parent.IsSampled() ? SamplingDecision::kRecordAndSample
                                          : SamplingDecision::kRecordOnly;
        return r;
      }
      s_->traces.fetch_add(1, std::memory_order_relaxed);
      if (p.parent.IsSampled()) {
        r.decision = SamplingDecision::kRecordAndSample;
        s_->CountKept(SamplingReason::kParent, false);
        if (head) r.attributes.emplace_back(kSamplingReasonKey, std::string("parent"));
        return r;
      }
      if (!head) {
        r.decision = SamplingDecision::kRecordOnly;  // the caller decides later
        return r;
      }
    } else {
      s_->traces.fetch_add(1, std::memory_order_relaxed);
    }
    // The probabilistic share, decided now (the same rule as traceidratio).
    const TraceState& parent_state = p.parent.trace_state();
    const bool keep = s_->threshold < cs::kMaxThreshold &&
                      cs::Randomness(p.trace_id, parent_state) >= s_->threshold;
    if (keep) {
      r.decision = SamplingDecision::kRecordAndSample;
      r.trace_state = cs::WithThreshold(parent_state, s_->threshold);
      s_->CountKept(SamplingReason::kRatio, false);
      if (head) r.attributes.emplace_back(kSamplingReasonKey, std::string("ratio"));
      return r;
    }
    // Deferred: recorded, decided at the end. No probabilistic threshold:
    // a trace kept later for an error or latency is not a sample.
    r.decision = SamplingDecision::kRecordOnly;
    if (!parent_state.empty() && parent_state.Get("ot")) {
      r.trace_state = cs::WithThreshold(parent_state, std::nullopt);
    }
    return r;
  }

  std::string Description() const override {
    return "PrismAdaptive{ratio:" + std::to_string(s_->options.ratio) +
           ",slow_ms:" + std::to_string(s_->options.slow.count()) + "}";
  }
  bool ReadsAttributes() const override { return false; }

 private:
  std::shared_ptr<AdaptiveSampling::State> s_;
};

class AdaptiveProcessor final : public SpanProcessor {
 public:
  explicit AdaptiveProcessor(std::shared_ptr<AdaptiveSampling::State> s) : s_(std::move(s)) {}

  void OnStart(SpanData& span, const SpanContext& parent) override {
    // Only sampled spans are the exporters' business from the start.
    if (s_->next && span.context.IsSampled()) s_->next->OnStart(span, parent);
  }

  void OnEnd(std::unique_ptr<SpanData> span) override {
    if (span->context.IsSampled() || s_->shut_down.load(std::memory_order_relaxed)) {
      if (s_->next && span->context.IsSampled()) s_->next->OnEnd(std::move(span));
      return;
    }
    s_->OnEnd(std::move(span));
  }

  bool ForceFlush(Timeout timeout) override {
    return s_->next ? s_->next->ForceFlush(timeout) : true;
  }

  bool Shutdown(Timeout timeout) override {
    s_->shut_down.store(true);
    s_->StopSweeper();
    s_->DropAll();
    return s_->next ? s_->next->Shutdown(timeout) : true;
  }

 private:
  std::shared_ptr<AdaptiveSampling::State> s_;
};

}  // namespace

AdaptiveSampling::AdaptiveSampling(AdaptiveOptions options)
    : state_(std::make_shared<State>(std::move(options))) {
  if (state_->options.background_sweep) state_->StartSweeper();
}

AdaptiveSampling::~AdaptiveSampling() { state_->StopSweeper(); }

std::unique_ptr<Sampler> AdaptiveSampling::MakeSampler() {
  return std::make_unique<AdaptiveSampler>(state_);
}

std::unique_ptr<SpanProcessor> AdaptiveSampling::MakeProcessor(
    std::unique_ptr<SpanProcessor> next) {
  state_->next = std::move(next);
  return std::make_unique<AdaptiveProcessor>(state_);
}

void AdaptiveSampling::Keep(const TraceId& trace_id, SamplingReason reason) {
  state_->Keep(trace_id, reason, state_->options.role == AdaptiveOptions::Role::kDownstream);
}

void AdaptiveSampling::KeepReplayed(const TraceId& trace_id, SamplingReason reason) {
  state_->Keep(trace_id, reason, /*trigger=*/false, /*replay=*/true);
}

void AdaptiveSampling::DropDeferred(const TraceId& trace_id) { state_->DropDeferred(trace_id); }

bool AdaptiveSampling::EndDeferred(const SpanContext& context, std::unique_ptr<DeferredSpan> span,
                                   bool error, uint64_t duration_ns) {
  if (!context.IsValid() || !span) return false;
  return state_->EndDeferred(context.trace_id(), std::move(span), error, duration_ns);
}

bool AdaptiveSampling::IsKept(const TraceId& trace_id) const { return state_->IsKept(trace_id); }

void AdaptiveSampling::Sweep() { state_->Sweep(); }

void AdaptiveSampling::Shutdown() {
  state_->shut_down.store(true);
  state_->StopSweeper();
  state_->DropAll();
}

AdaptiveCounters AdaptiveSampling::Counters() const {
  const State& s = *state_;
  AdaptiveCounters c;
  auto r = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  c.traces = r(s.traces);
  c.kept_parent = r(s.kept[static_cast<size_t>(SamplingReason::kParent)]);
  c.kept_ratio = r(s.kept[static_cast<size_t>(SamplingReason::kRatio)]);
  c.kept_error = r(s.kept[static_cast<size_t>(SamplingReason::kError)]);
  c.kept_slow = r(s.kept[static_cast<size_t>(SamplingReason::kSlow)]);
  c.kept_trigger = r(s.kept_trigger);
  c.dropped = r(s.dropped);
  c.evicted = r(s.evicted);
  c.evicted_spans = r(s.evicted_spans);
  c.timed_out = r(s.timed_out);
  c.late_kept = r(s.late_kept);
  c.late_dropped = r(s.late_dropped);
  c.unmatched_keeps = r(s.unmatched_keeps);
  c.buffered_spans =
      static_cast<uint64_t>(std::max<int64_t>(0, s.buffered_spans.load(std::memory_order_relaxed)));
  c.buffered_bytes =
      static_cast<uint64_t>(std::max<int64_t>(0, s.buffered_bytes.load(std::memory_order_relaxed)));
  c.peak_buffered_bytes = r(s.peak_bytes);
  return c;
}

const AdaptiveOptions& AdaptiveSampling::options() const { return state_->options; }

}  // namespace prism::tracing
