// Shared attribute blocks (AttributeBlock, StartSpanOptions::shared_attributes)
// change how a span holds its attributes, never what is recorded: every
// case below records the same spans twice, once with the block and once
// with its entries copied into the span's own list, and both must encode
// to the same OTLP bytes (JSON and protobuf) once ids and times are fixed.

#include <gtest/gtest.h>

#include <functional>

#include "exporters_test_util.h"
#include "prism/tracing/exporters/otlp_encoder.h"

namespace prism::tracing {
namespace {

using testing::CaptureProcessor;

const SharedAttributes& Block() {
  static const SharedAttributes block =
      AttributeBlock::Make({{"rpc.system", std::string("grpc")},
                            {"rpc.service", std::string("prism.v1.KeyValue")},
                            {"server.port", int64_t{7070}}});
  return block;
}

// Records what `script` does with a tracer, `with_block` telling it whether
// to pass Block() or its entries; returns the spans, ids and times fixed.
using Script = std::function<void(const Tracer&, bool with_block)>;
std::vector<std::unique_ptr<SpanData>> Record(const Script& script, bool with_block,
                                              SpanLimits limits = {},
                                              std::unique_ptr<Sampler> sampler = nullptr) {
  auto store = std::make_shared<CaptureProcessor::Store>();
  TracerProviderOptions o;
  o.resource = Resource({{"service.name", std::string("block-test")}});
  o.limits = limits;
  o.sampler = std::move(sampler);
  o.processors.push_back(std::make_unique<CaptureProcessor>(store));
  TracerProvider provider(std::move(o));
  script(provider.GetTracer("t"), with_block);
  provider.Shutdown();
  std::lock_guard lock(store->mutex);
  for (auto& s : store->spans) {
    s->context = SpanContext(TraceId::FromHex("0af7651916cd43dd8448eb211c80319c"),
                             SpanId::FromHex("b7ad6b7169203331"), trace_flags::kSampled, false);
    s->parent_span_id = SpanId();
    s->start_unix_nano = 1;
    s->end_unix_nano = 2;
  }
  return std::move(store->spans);
}

// The options a script starts a span with: the block, or its entries, then `own`.
StartSpanOptions With(bool with_block, Attributes own) {
  StartSpanOptions o;
  if (with_block) {
    o.shared_attributes = Block();
    o.attributes = std::move(own);
  } else {
    o.attributes = Block()->attributes();
    for (auto& kv : own) o.attributes.push_back(std::move(kv));
  }
  return o;
}

// Records `script` both ways and checks the encodings are the same; returns
// whether the block run's first span still refers to the block.
bool ExpectSameEncoding(const Script& script, SpanLimits limits = {},
                        std::function<std::unique_ptr<Sampler>()> sampler = nullptr) {
  auto shared = Record(script, true, limits, sampler ? sampler() : nullptr);
  auto copied = Record(script, false, limits, sampler ? sampler() : nullptr);
  EXPECT_EQ(shared.size(), copied.size());
  EXPECT_FALSE(shared.empty());
  if (shared.empty() || shared.size() != copied.size()) return false;
  for (const auto& s : copied) EXPECT_EQ(s->shared_attributes, nullptr);
  std::string json_shared, json_copied, pb_shared, pb_copied;
  otlp::EncodeJson(shared, json_shared);
  otlp::EncodeJson(copied, json_copied);
  otlp::EncodeProtobuf(shared, pb_shared);
  otlp::EncodeProtobuf(copied, pb_copied);
  EXPECT_EQ(json_shared, json_copied);
  EXPECT_EQ(pb_shared, pb_copied);
  for (size_t i = 0; i < shared.size(); ++i) {
    EXPECT_EQ(shared[i]->attribute_count(), copied[i]->attribute_count());
    EXPECT_EQ(shared[i]->dropped_attributes_count, copied[i]->dropped_attributes_count);
  }
  return shared.front()->shared_attributes != nullptr;
}

TEST(AttributeBlock, MakeCanonicalizesAndFinds) {
  auto b = AttributeBlock::Make(
      {{"a", int64_t{1}}, {"", int64_t{9}}, {"b", std::string("long value")}, {"a", int64_t{2}}});
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ(b->attributes()[0].key, "a");
  EXPECT_EQ(std::get<int64_t>(b->attributes()[0].value), 2);  // first place, last value
  EXPECT_EQ(b->longest_value(), 10u);
  ASSERT_NE(b->Find("b"), nullptr);
  EXPECT_EQ(b->Find("c"), nullptr);
  EXPECT_EQ(b->Find(""), nullptr);
}

TEST(AttributeBlock, EncodedOncePerFormat) {
  static int calls = 0;
  auto encode = +[](const Attributes& a, std::string& out) {
    ++calls;
    out = std::to_string(a.size());
  };
  auto b = AttributeBlock::Make(Block()->attributes());  // not Block(): its cache is the encoder's
  EXPECT_EQ(b->Encoded(AttributeBlock::Format::kOtlpJson, encode), "3");
  EXPECT_EQ(b->Encoded(AttributeBlock::Format::kOtlpJson, encode), "3");
  EXPECT_EQ(calls, 1);
}

TEST(AttributeBlock, SpanRefersToTheBlockAndEncodesAsIfCopied) {
  const bool kept = ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("server", With(b, {{"prism.request_id", std::string("r1")}}));
    s.SetAttribute("rpc.grpc.status_code", int64_t{0});
    s.End();
  });
  EXPECT_TRUE(kept);
}

TEST(AttributeBlock, FindAttributeAndAllAttributesSeeBoth) {
  auto spans = Record(
      [](const Tracer& t, bool b) {
        Span s = t.StartSpan("x", With(b, {{"own", int64_t{1}}}));
        s.End();
      },
      true);
  ASSERT_EQ(spans.size(), 1u);
  const SpanData& s = *spans[0];
  ASSERT_NE(s.shared_attributes, nullptr);
  EXPECT_EQ(s.attributes.size(), 1u);
  EXPECT_EQ(std::get<std::string>(*s.FindAttribute("rpc.system")), "grpc");
  EXPECT_EQ(std::get<int64_t>(*s.FindAttribute("own")), 1);
  Attributes all = s.AllAttributes();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].key, "rpc.system");
  EXPECT_EQ(all[3].key, "own");
}

TEST(AttributeBlock, AnOwnKeyTheBlockHasWinsInTheBlocksPlace) {
  const bool kept = ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("x", With(b, {{"rpc.service", std::string("other")}}));
    s.End();
  });
  EXPECT_FALSE(kept);  // copied in to change it
}

TEST(AttributeBlock, SettingABlockKeyLaterCopiesTheBlockIn) {
  const bool kept = ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("x", With(b, {{"own", int64_t{1}}}));
    s.SetAttribute("new", std::string("v"));
    s.SetAttribute("server.port", int64_t{8080});
    s.SetAttribute("own", int64_t{2});
    s.End();
  });
  EXPECT_FALSE(kept);
}

TEST(AttributeBlock, SetAttributesAfterStart) {
  const bool kept = ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("x", With(b, {}));
    s.SetAttributes({{"late", std::string("v")}, {"late2", int64_t{3}}});
    s.End();
    Span s2 = t.StartSpan("y", With(b, {}));
    s2.SetAttributes({{"rpc.system", std::string("http")}});
    s2.End();
  });
  EXPECT_TRUE(kept);
}

TEST(AttributeBlock, SetAttributesOfABlockAfterStart) {
  // Referred to by a span with no attributes yet; copied into one with some.
  EXPECT_TRUE(ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("x");
    if (b) {
      s.SetAttributes(Block());
    } else {
      s.SetAttributes(Block()->attributes());
    }
    s.SetAttribute("own", int64_t{1});
    s.End();
  }));
  EXPECT_FALSE(ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("x");
    s.SetAttribute("server.port", int64_t{1});
    if (b) {
      s.SetAttributes(Block());
    } else {
      s.SetAttributes(Block()->attributes());
    }
    s.End();
  }));
}

TEST(AttributeBlock, CountLimitCountsTheBlock) {
  SpanLimits l;
  l.attribute_count = 4;  // the block's 3, then one of the span's own
  const bool kept = ExpectSameEncoding(
      [](const Tracer& t, bool b) {
        Span s = t.StartSpan("x", With(b, {{"a", int64_t{1}}, {"b", int64_t{2}}}));
        s.SetAttribute("c", int64_t{3});
        s.End();
        Span s2 = t.StartSpan("y", With(b, {}));
        s2.SetAttribute("a", int64_t{1});
        s2.SetAttribute("b", int64_t{2});
        s2.End();
      },
      l);
  EXPECT_FALSE(kept);  // 5 do not fit 4: the general path, one by one
}

TEST(AttributeBlock, CountLimitWithABlockThatFits) {
  SpanLimits l;
  l.attribute_count = 4;
  const bool kept = ExpectSameEncoding(
      [](const Tracer& t, bool b) {
        Span s = t.StartSpan("x", With(b, {}));
        s.SetAttribute("a", int64_t{1});
        s.SetAttribute("b", int64_t{2});  // dropped: the 5th
        s.End();
      },
      l);
  EXPECT_TRUE(kept);
}

TEST(AttributeBlock, ValueLengthLimitTruncatesTheBlocksValues) {
  SpanLimits l;
  l.attribute_value_length = 6;  // "prism.v1.KeyValue" -> "prism."
  const bool kept = ExpectSameEncoding(
      [](const Tracer& t, bool b) {
        Span s = t.StartSpan("x", With(b, {{"own", std::string("0123456789")}}));
        s.End();
      },
      l);
  EXPECT_FALSE(kept);
}

// The block a span with Block() ends with: Block() and then two more.
const SharedAttributes& EndBlock() {
  static const SharedAttributes block = AttributeBlock::Extend(
      Block(), {{"rpc.grpc.status_code", int64_t{0}}, {"rpc.status_code", std::string("OK")}});
  return block;
}

TEST(AttributeBlock, ExtendKeepsTheBaseFirst) {
  const SharedAttributes& e = EndBlock();
  EXPECT_EQ(e->base(), Block().get());
  ASSERT_EQ(e->size(), 5u);
  EXPECT_EQ(e->attributes()[0].key, "rpc.system");
  EXPECT_EQ(e->attributes()[4].key, "rpc.status_code");
  EXPECT_EQ(e->key_bits() & Block()->key_bits(), Block()->key_bits());
  // A key of the base again: an ordinary block, later value first place.
  auto clash = AttributeBlock::Extend(Block(), {{"rpc.service", std::string("other")}});
  EXPECT_EQ(clash->base(), nullptr);
  ASSERT_EQ(clash->size(), 3u);
  EXPECT_EQ(std::get<std::string>(*clash->Find("rpc.service")), "other");
  EXPECT_EQ(AttributeBlock::Extend(nullptr, {{"a", int64_t{1}}})->base(), nullptr);
}

// A span that refers to Block() and is given EndBlock() refers to that,
// and encodes as a span given the two entries one by one.
TEST(AttributeBlock, AnExtendingBlockReplacesTheSpansBlock) {
  const bool kept = ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("x", With(b, {}));
    if (b) {
      s.SetAttributes(EndBlock());
    } else {
      s.SetAttribute("rpc.grpc.status_code", int64_t{0});
      s.SetAttribute("rpc.status_code", std::string("OK"));
    }
    s.End();
  });
  EXPECT_TRUE(kept);
  auto spans = Record(
      [](const Tracer& t, bool) {
        Span s = t.StartSpan("x", With(true, {{"own", int64_t{1}}}));
        s.SetAttributes(EndBlock());
        s.End();
      },
      true);
  ASSERT_EQ(spans.size(), 1u);
  // The added entries come before the span's own: its attributes are the
  // block's, then its own.
  EXPECT_EQ(spans[0]->shared_attributes, EndBlock());
  EXPECT_EQ(spans[0]->attribute_count(), 6u);
  EXPECT_EQ(std::get<int64_t>(*spans[0]->FindAttribute("own")), 1);
  EXPECT_EQ(std::get<std::string>(*spans[0]->FindAttribute("rpc.status_code")), "OK");
}

// When the span's own attributes hold an added key, or the whole would not
// fit, the block is copied in entry by entry, as SetAttribute would.
TEST(AttributeBlock, AnExtendingBlockThatCannotReplaceIsCopiedIn) {
  EXPECT_FALSE(ExpectSameEncoding([](const Tracer& t, bool b) {
    Span s = t.StartSpan("x", With(b, {{"rpc.status_code", std::string("UNSET")}}));
    if (b) {
      s.SetAttributes(EndBlock());
    } else {
      s.SetAttributes(EndBlock()->attributes());
    }
    s.End();
  }));
  SpanLimits l;
  l.attribute_count = 4;  // the block's 3 fit, its extension's 5 do not
  EXPECT_FALSE(ExpectSameEncoding(
      [](const Tracer& t, bool b) {
        Span s = t.StartSpan("x", With(b, {}));
        if (b) {
          s.SetAttributes(EndBlock());
        } else {
          s.SetAttributes(EndBlock()->attributes());
        }
        s.End();
      },
      l));
}

// A sampler that reads start attributes sees the block's.
class SeesServiceSampler : public Sampler {
 public:
  SamplingResult ShouldSample(const SamplingParameters& p) const override {
    SamplingResult r;
    r.decision = SamplingDecision::kDrop;
    for (const auto& kv : p.attributes) {
      if (kv.key == "rpc.service") r.decision = SamplingDecision::kRecordAndSample;
    }
    return r;
  }
  std::string Description() const override { return "SeesService"; }
};

TEST(AttributeBlock, SamplerThatReadsAttributesSeesTheBlock) {
  const bool kept = ExpectSameEncoding(
      [](const Tracer& t, bool b) {
        Span s = t.StartSpan("x", With(b, {{"own", int64_t{1}}}));
        s.End();
      },
      {}, [] { return std::make_unique<SeesServiceSampler>(); });
  EXPECT_FALSE(kept);
}

}  // namespace
}  // namespace prism::tracing
