// TraceState: the tracestate rules of the W3C Trace Context editor's draft
// (key = ( lcalpha / DIGIT ) 0*255 ( keychar ), '@' a keychar; a repeated key
// keeps its first occurrence), one table per rule of the grammar.

#include "prism/tracing/trace_state.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace prism::tracing {
namespace {

// Every character the key grammar allows but '@', as the W3C test suite
// builds it.
const std::string kAllKeyChars = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";

// Every character the value grammar allows (0x20-0x7E without ',' and '='),
// leading space included.
std::string AllValueChars() {
  std::string v;
  for (int c = 0x20; c <= 0x7e; ++c) {
    if (c != ',' && c != '=') v.push_back(static_cast<char>(c));
  }
  return v;
}

std::string Members(int n) {
  std::string h;
  for (int i = 1; i <= n; ++i) {
    if (!h.empty()) h += ',';
    h += "k" + std::to_string(i) + "=" + std::to_string(i);
  }
  return h;
}

struct KeyCase {
  std::string key;
  bool valid;
  const char* rule;
};

TEST(W3CTraceStateKey, Grammar) {
  const KeyCase cases[] = {
      {"a", true, "shortest key"},
      {"7", true, "a key may be one DIGIT"},
      {"foo", true, "lcalpha"},
      {"foo123", true, "DIGIT after the first character"},
      {"1foo", true, "a key may start with a DIGIT"},
      {"f_-*/0@", true, "every keychar"},
      {kAllKeyChars, true, "the W3C suite's key_without_vendor"},
      {kAllKeyChars + "@a-z0-9_-*/", true, "the W3C suite's key_with_vendor"},
      {std::string(256, 'z'), true, "key of 256"},
      {std::string(257, 'z'), false, "key of 257"},
      {"_foo", false, "must start with lcalpha or DIGIT"},
      {"-foo", false, "must start with lcalpha or DIGIT"},
      {"*foo", false, "must start with lcalpha or DIGIT"},
      {"/foo", false, "must start with lcalpha or DIGIT"},
      {"Foo", false, "upper case"},
      {"FOO", false, "upper case"},
      {"foo.bar", false, "'.' is not a keychar"},
      {"foo bar", false, "space"},
      {"foo ", false, "trailing space"},
      {"foo=", false, "'='"},
      {"foo\x7f", false, "DEL"},
      {"", false, "empty"},
      // '@' is a keychar anywhere after the first character (the Level 1
      // tenant-id "@" system-id form and its 241/14 limits are gone).
      {"fw529a3039@dt", true, "a Level 1 multi-tenant key is still valid"},
      {"1tenant@sys", true, "DIGIT first, '@' inside"},
      {"9@a", true, "short key with '@'"},
      {"foo@", true, "'@' last"},
      {"foo@@bar", true, "two '@' in a row"},
      {"foo@bar@baz", true, "two '@'"},
      {"t@1v", true, "DIGIT after '@'"},
      {"t@_v", true, "'_' after '@'"},
      {std::string(241, 't') + "@" + std::string(14, 'v'), true, "Level 1's longest, 256"},
      {std::string(242, 't') + "@v", true, "242 before '@': 245 in all"},
      {std::string(242, 't') + "@" + std::string(13, 'v'), true, "242 + '@' + 13 = 256"},
      {"t@" + std::string(15, 'v'), true, "15 after '@'"},
      {std::string(242, 't') + "@" + std::string(14, 'v'), false, "257 with '@'"},
      {"@foo", false, "'@' first"},
      {"@", false, "only '@'"},
      {"_t@v", false, "'_' first"},
      {"foo@Bar", false, "upper case after '@'"},
      {"foo@b.r", false, "'.' after '@'"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(TraceState::IsValidKey(c.key), c.valid) << c.rule << ": \"" << c.key << "\"";
  }
}

struct ValueCase {
  std::string value;
  bool valid;
  const char* rule;
};

TEST(W3CTraceStateValue, Grammar) {
  const ValueCase cases[] = {
      {"1", true, "one nblk-chr"},
      {"t61rcWkgMzE", true, "spec example"},
      {AllValueChars(), true, "every allowed character, leading space included"},
      {"  leading", true, "leading spaces belong to the value"},
      {"a b", true, "inner space"},
      {std::string(256, 'v'), true, "256 characters"},
      {std::string(255, ' ') + "v", true, "255 spaces then a nblk-chr"},
      {std::string(257, 'v'), false, "257 characters"},
      {"", false, "empty"},
      {" ", false, "only a space"},
      {"trailing ", false, "must end with a non-space"},
      {"a=b", false, "'='"},
      {"a,b", false, "','"},
      {"tab\tinside", false, "tab"},
      {"new\nline", false, "newline"},
      {std::string("nul\0x", 5), false, "NUL"},
      {"\x7f", false, "DEL"},
      {"caf\xc3\xa9", false, "non-ASCII"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(TraceState::IsValidValue(c.value), c.valid) << c.rule << ": \"" << c.value << "\"";
  }
}

struct ParseCase {
  std::string header;
  // What ParseStrict yields (nullopt: the header is discarded whole).
  std::optional<std::string> strict;
  // What the lenient Parse keeps.
  std::string lenient;
  const char* rule;
};

std::vector<ParseCase> ParseCases() {
  std::vector<ParseCase> cases = {
      {"", "", "", "empty header"},
      {"   \t ", "", "", "whitespace-only header"},
      {",", "", "", "empty members only"},
      {" , \t, ", "", "", "whitespace-only members"},
      {"foo=1", "foo=1", "foo=1", "one member"},
      {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
       "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "spec example, order kept"},
      {"foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3", "foo=1,bar=2,baz=3",
       "OWS around members"},
      {"foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3", "foo=1,bar=2,baz=3",
       "tabs and spaces around members"},
      {" foo=1", "foo=1", "foo=1", "leading space"},
      {"\tfoo=1", "foo=1", "foo=1", "leading tab"},
      {"foo=1 ", "foo=1", "foo=1", "trailing space is OWS, not value"},
      {"foo=1\t", "foo=1", "foo=1", "trailing tab"},
      {"\t foo=1 \t", "foo=1", "foo=1", "both sides"},
      {"foo= 1", "foo= 1", "foo= 1", "a value keeps its leading space"},
      {"foo=1,,bar=2", "foo=1,bar=2", "foo=1,bar=2", "empty member between"},
      {"foo=1,", "foo=1", "foo=1", "trailing comma (combined with an empty field)"},
      {",foo=1", "foo=1", "foo=1", "leading comma"},
      {"foo=1, ,bar=2", "foo=1,bar=2", "foo=1,bar=2", "whitespace-only member between"},
      // A repeated key keeps the header: its first occurrence stays.
      {"foo=1,foo=1", "foo=1", "foo=1", "duplicate key, same value"},
      {"foo=1,foo=2", "foo=1", "foo=1", "duplicate key"},
      {"foo=1,bar=2,baz=3,foo=4", "foo=1,bar=2,baz=3", "foo=1,bar=2,baz=3",
       "duplicate key at the end"},
      {"foo=1,bar=2,foo=3,bar=4", "foo=1,bar=2", "foo=1,bar=2", "two repeated keys"},
      {"foo=1,foo=2,BAD=1", std::nullopt, "foo=1", "a duplicate and an invalid member"},
      {"foo =1", std::nullopt, "", "space before '='"},
      {"FOO=1", std::nullopt, "", "upper-case key"},
      {"foo.bar=1", std::nullopt, "", "'.' in key"},
      {"foo@=1,bar=2", "foo@=1,bar=2", "foo@=1,bar=2", "'@' last in a key"},
      {"@foo=1,bar=2", std::nullopt, "bar=2", "'@' first in a key"},
      {"foo@@bar=1,bar=2", "foo@@bar=1,bar=2", "foo@@bar=1,bar=2", "two '@'"},
      {"foo@bar@baz=1,bar=2", "foo@bar@baz=1,bar=2", "foo@bar@baz=1,bar=2", "two '@'"},
      {"1foo=1", "1foo=1", "1foo=1", "DIGIT-first key"},
      {"foo=bar=baz", std::nullopt, "", "'=' in value"},
      {"foo=,bar=3", std::nullopt, "bar=3", "empty value"},
      {"foo", std::nullopt, "", "no '='"},
      {"=1", std::nullopt, "", "no key"},
      {"foo=1,bar", std::nullopt, "foo=1", "member without '='"},
      {"foo=a\tb", std::nullopt, "", "tab inside value"},
      {"foo=1,z" + std::string(256, 'z') + "=1", std::nullopt, "foo=1", "key of 257"},
      {"foo=1," + std::string(256, 'z') + "=1", "foo=1," + std::string(256, 'z') + "=1",
       "foo=1," + std::string(256, 'z') + "=1", "key of 256"},
      {"foo=1," + std::string(241, 't') + "@" + std::string(14, 'v') + "=1",
       "foo=1," + std::string(241, 't') + "@" + std::string(14, 'v') + "=1",
       "foo=1," + std::string(241, 't') + "@" + std::string(14, 'v') + "=1",
       "tenant 241 and system 14"},
      {"foo=1," + std::string(242, 't') + "@v=1", "foo=1," + std::string(242, 't') + "@v=1",
       "foo=1," + std::string(242, 't') + "@v=1", "242 before '@' (Level 1 rejected it)"},
      {"foo=1,t@" + std::string(15, 'v') + "=1", "foo=1,t@" + std::string(15, 'v') + "=1",
       "foo=1,t@" + std::string(15, 'v') + "=1", "15 after '@' (Level 1 rejected it)"},
      {"foo=1," + std::string(242, 't') + "@" + std::string(14, 'v') + "=1", std::nullopt, "foo=1",
       "key with '@' of 257"},
      {"foo=" + std::string(256, 'v'), "foo=" + std::string(256, 'v'),
       "foo=" + std::string(256, 'v'), "value of 256"},
      {"foo=" + std::string(257, 'v'), std::nullopt, "", "value of 257"},
      {kAllKeyChars + "=" + AllValueChars(), kAllKeyChars + "=" + AllValueChars(),
       kAllKeyChars + "=" + AllValueChars(), "all allowed characters"},
      {Members(32), Members(32), Members(32), "32 members"},
      {Members(33), std::nullopt, Members(32), "33 members"},
      {Members(32) + ",,, ,", Members(32), Members(32), "32 members and empty ones"},
      // Repeats are list members on the wire, so they count towards 32.
      {Members(32) + ",k1=x", std::nullopt, Members(32), "32 members and a 33rd repeat"},
      {Members(31) + ",k1=x", Members(31), Members(31), "31 members and a repeat"},
  };
  return cases;
}

TEST(W3CTraceStateParse, StrictTable) {
  for (const auto& c : ParseCases()) {
    std::optional<TraceState> ts = TraceState::ParseStrict(c.header);
    ASSERT_EQ(ts.has_value(), c.strict.has_value()) << c.rule << ": \"" << c.header << "\"";
    if (ts) {
      EXPECT_EQ(ts->ToHeader(), *c.strict) << c.rule;
    }
  }
}

TEST(W3CTraceStateParse, LenientTable) {
  for (const auto& c : ParseCases()) {
    EXPECT_EQ(TraceState::Parse(c.header).ToHeader(), c.lenient)
        << c.rule << ": \"" << c.header << "\"";
  }
}

TEST(W3CTraceStateParse, GetAfterParse) {
  TraceState ts = TraceState::Parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  ASSERT_EQ(ts.size(), 2u);
  EXPECT_EQ(ts.members()[0].key, "rojo");
  EXPECT_EQ(ts.members()[1].value, "t61rcWkgMzE");
  EXPECT_EQ(ts.Get("congo"), "t61rcWkgMzE");
  EXPECT_EQ(ts.Get("rojo"), "00f067aa0ba902b7");
  EXPECT_FALSE(ts.Get("nobody").has_value());
  EXPECT_FALSE(ts.empty());
}

// Multiple tracestate header fields are combined with ',' in field order
// (RFC 9110 5.3) before parsing.
TEST(W3CTraceStateParse, CombinedHeaderFields) {
  struct Case {
    std::vector<std::string> fields;
    std::optional<std::string> expected;
  } cases[] = {
      {{"foo=1,bar=2", "rojo=1,congo=2", "baz=3"}, "foo=1,bar=2,rojo=1,congo=2,baz=3"},
      {{"foo=1", ""}, "foo=1"},
      {{"", "foo=1"}, "foo=1"},
      {{"", ""}, ""},
      {{"foo=1", "foo=1"}, "foo=1"},
      {{"foo=1", "foo=2"}, "foo=1"},
      {{"foo=1", std::string(257, 'z') + "=1"}, std::nullopt},
      {{Members(30), "x=1,y=2"}, Members(30) + ",x=1,y=2"},
      {{Members(30), "x=1,y=2,z=3"}, std::nullopt},
  };
  for (const auto& c : cases) {
    std::string combined;
    for (size_t i = 0; i < c.fields.size(); ++i) {
      if (i > 0) combined += ',';
      combined += c.fields[i];
    }
    std::optional<TraceState> ts = TraceState::ParseStrict(combined);
    ASSERT_EQ(ts.has_value(), c.expected.has_value()) << combined;
    if (ts) {
      EXPECT_EQ(ts->ToHeader(), *c.expected);
    }
  }
}

TEST(W3CTraceStateSet, UpdatedKeyMovesToFront) {
  const TraceState base = TraceState::Parse("a=1,b=2,c=3");
  struct Case {
    std::string key;
    std::string value;
    std::string expected;
    const char* rule;
  } cases[] = {
      {"c", "9", "c=9,a=1,b=2", "an updated key moves to the front"},
      {"b", "2", "b=2,a=1,c=3", "even with the same value"},
      {"a", "0", "a=0,b=2,c=3", "the first key stays first"},
      {"d", "4", "d=4,a=1,b=2,c=3", "a new key is added at the front"},
      {"t@v", "x", "t@v=x,a=1,b=2,c=3", "multi-tenant key"},
      {"D", "4", "a=1,b=2,c=3", "invalid key: unchanged"},
      {"d", "", "a=1,b=2,c=3", "invalid value: unchanged"},
      {"d", "x,y", "a=1,b=2,c=3", "invalid value: unchanged"},
      {"d", "x ", "a=1,b=2,c=3", "trailing space: unchanged"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(base.Set(c.key, c.value).ToHeader(), c.expected) << c.rule;
  }
  EXPECT_EQ(base.ToHeader(), "a=1,b=2,c=3") << "Set must not change the original";
}

TEST(W3CTraceStateSet, FullListDropsRightMost) {
  const TraceState full = TraceState::Parse(Members(32));
  ASSERT_EQ(full.size(), 32u);

  TraceState added = full.Set("new", "v");
  ASSERT_EQ(added.size(), 32u);
  EXPECT_EQ(added.members().front().key, "new");
  EXPECT_EQ(added.members().back().key, "k31");
  EXPECT_FALSE(added.Get("k32").has_value());

  // Updating a key already there needs no room: nothing is dropped.
  TraceState updated = full.Set("k32", "v");
  ASSERT_EQ(updated.size(), 32u);
  EXPECT_EQ(updated.members().front().key, "k32");
  EXPECT_EQ(updated.members().back().key, "k31");
  EXPECT_TRUE(updated.Get("k1").has_value());
}

TEST(W3CTraceStateSet, OnEmpty) {
  TraceState ts;
  EXPECT_TRUE(ts.empty());
  EXPECT_EQ(ts.size(), 0u);
  EXPECT_TRUE(ts.members().empty());
  EXPECT_EQ(ts.ToHeader(), "");
  TraceState one = ts.Set("ot", "th:0");
  EXPECT_EQ(one.ToHeader(), "ot=th:0");
  EXPECT_TRUE(ts.empty());
}

TEST(W3CTraceStateErase, Table) {
  const TraceState base = TraceState::Parse("a=1,b=2,c=3");
  EXPECT_EQ(base.Erase("b").ToHeader(), "a=1,c=3");
  EXPECT_EQ(base.Erase("a").ToHeader(), "b=2,c=3");
  EXPECT_EQ(base.Erase("c").ToHeader(), "a=1,b=2");
  EXPECT_EQ(base.Erase("x").ToHeader(), "a=1,b=2,c=3");
  EXPECT_TRUE(TraceState::Parse("a=1").Erase("a").empty());
  EXPECT_TRUE(TraceState().Erase("a").empty());
  EXPECT_EQ(base.ToHeader(), "a=1,b=2,c=3");
}

TEST(W3CTraceStateEquality, Table) {
  EXPECT_EQ(TraceState(), TraceState());
  EXPECT_EQ(TraceState(), TraceState::Parse(""));
  EXPECT_EQ(TraceState(), TraceState::Parse("a=1").Erase("a"));
  EXPECT_EQ(TraceState::Parse("a=1,b=2"), TraceState::Parse(" a=1 ,, b=2 "));
  EXPECT_EQ(TraceState::Parse("a=1,b=2"), TraceState().Set("b", "2").Set("a", "1"));
  EXPECT_FALSE(TraceState::Parse("a=1,b=2") == TraceState::Parse("b=2,a=1"));
  EXPECT_FALSE(TraceState::Parse("a=1") == TraceState::Parse("a=2"));
  EXPECT_FALSE(TraceState::Parse("a=1") == TraceState());
  EXPECT_FALSE(TraceState::Parse("a=1") == TraceState::Parse("a=1,b=2"));
}

TEST(W3CTraceStateRoundTrip, ParseFormatParse) {
  for (const auto& c : ParseCases()) {
    TraceState once = TraceState::Parse(c.header);
    EXPECT_EQ(TraceState::Parse(once.ToHeader()), once) << c.rule;
    std::optional<TraceState> strict = TraceState::ParseStrict(once.ToHeader());
    ASSERT_TRUE(strict.has_value()) << c.rule;
    EXPECT_EQ(*strict, once) << c.rule;
  }
}

TEST(W3CTraceStateCopy, SharesAndStaysImmutable) {
  TraceState a = TraceState::Parse("a=1");
  TraceState b = a;
  TraceState c = b.Set("b", "2");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.ToHeader(), "a=1");
  EXPECT_EQ(c.ToHeader(), "b=2,a=1");
}

}  // namespace
}  // namespace prism::tracing
