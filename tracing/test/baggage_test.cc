// Baggage and the W3C baggage wire format: one table per rule of the W3C
// Baggage specification (grammar, percent-encoding, properties, limits).

#include "prism/tracing/baggage.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "prism/tracing/propagation.h"

namespace prism::tracing {
namespace {

using Entries = std::vector<Baggage::Entry>;

Baggage Make(const Entries& entries) {
  Baggage b;
  for (const auto& e : entries) b = b.Set(e.key, e.value, e.metadata);
  return b;
}

std::string Describe(const Baggage& b) {
  std::string s = "{";
  for (const auto& e : b.entries()) {
    s += "[" + e.key + "|" + e.value + "|" + e.metadata + "]";
  }
  return s + "}";
}

// ---- The immutable Baggage type --------------------------------------------

TEST(W3CBaggageType, SetGetRemove) {
  Baggage empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.entries().empty());
  EXPECT_FALSE(empty.Get("a").has_value());

  Baggage one = empty.Set("a", "1");
  EXPECT_TRUE(empty.empty()) << "Set must not change the original";
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one.Get("a"), "1");

  Baggage two = one.Set("b", "2", "p=1;q");
  EXPECT_EQ(two.size(), 2u);
  EXPECT_EQ(two.entries()[1].metadata, "p=1;q");
  EXPECT_EQ(one.size(), 1u);

  Baggage replaced = two.Set("a", "3");
  EXPECT_EQ(replaced.size(), 2u) << "a later Set of a key replaces the earlier value";
  EXPECT_EQ(replaced.Get("a"), "3");
  EXPECT_EQ(two.Get("a"), "1");

  EXPECT_EQ(two.Remove("a").size(), 1u);
  EXPECT_FALSE(two.Remove("a").Get("a").has_value());
  EXPECT_EQ(two.Remove("x"), two);
  EXPECT_TRUE(one.Remove("a").empty());
  EXPECT_EQ(empty.Set("", "v"), empty) << "an empty key is not a key";
}

TEST(W3CBaggageType, Equality) {
  EXPECT_EQ(Baggage(), Baggage());
  EXPECT_EQ(Baggage(), Baggage().Set("a", "1").Remove("a"));
  EXPECT_EQ(Make({{"a", "1", ""}, {"b", "2", ""}}), Make({{"b", "2", ""}, {"a", "1", ""}}))
      << "keys are unique: order does not matter";
  EXPECT_FALSE(Make({{"a", "1", ""}}) == Make({{"a", "2", ""}}));
  EXPECT_FALSE(Make({{"a", "1", ""}}) == Make({{"a", "1", "p"}}));
  EXPECT_FALSE(Make({{"a", "1", ""}}) == Make({{"a", "1", ""}, {"b", "2", ""}}));
  EXPECT_FALSE(Make({{"a", "1", ""}}) == Baggage());
}

// ---- Parsing ------------------------------------------------------------------

struct ParseCase {
  std::string header;
  Entries expected;
  const char* rule;
};

TEST(W3CBaggageParse, Table) {
  const ParseCase cases[] = {
      {"", {}, "empty header"},
      {" , ,\t", {}, "empty members"},
      {"userId=alice,serverNode=DF%2028,isProduction=false",
       {{"userId", "alice", ""}, {"serverNode", "DF 28", ""}, {"isProduction", "false", ""}},
       "spec example"},
      {"userId =   alice", {{"userId", "alice", ""}}, "OWS around key and value"},
      {"serverNode = DF%2028, isProduction = false",
       {{"serverNode", "DF 28", ""}, {"isProduction", "false", ""}},
       "OWS around members"},
      {"key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
       {{"key1", "value1", "property1;property2"},
        {"key2", "value2", ""},
        {"key3", "value3", "propertyKey=propertyValue"}},
       "properties kept verbatim as metadata"},
      {"k=v; p1 ; p2 = x ", {{"k", "v", "p1 ; p2 = x"}}, "metadata keeps inner OWS"},
      {"k=", {{"k", "", ""}}, "empty value"},
      {"k=v=w==", {{"k", "v=w==", ""}}, "'=' inside the value"},
      {"k=a+b", {{"k", "a+b", ""}}, "'+' is a literal plus"},
      {"k=a%2Cb%3Dc%3Bd%20e%25f", {{"k", "a,b=c;d e%f", ""}}, "percent-decoding"},
      {"k=%e2%82%ac", {{"k", "\xE2\x82\xAC", ""}}, "lower-case percent-encoding"},
      {"k=%E2%82%AC", {{"k", "\xE2\x82\xAC", ""}}, "UTF-8 euro sign"},
      {"k=%FF", {{"k", "\xEF\xBF\xBD", ""}}, "invalid UTF-8 becomes U+FFFD"},
      {"k=a%C3", {{"k", "a\xEF\xBF\xBD", ""}}, "truncated UTF-8 becomes U+FFFD"},
      {"k=%ED%A0%80", {{"k", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", ""}}, "surrogate"},
      {"k=%C0%AF", {{"k", "\xEF\xBF\xBD\xEF\xBF\xBD", ""}}, "overlong encoding"},
      {"k=%00", {{"k", std::string(1, '\0'), ""}}, "an encoded NUL is a value byte"},
      {"!#$%&'*+-.^_`|~09azAZ=v", {{"!#$%&'*+-.^_`|~09azAZ", "v", ""}}, "every tchar"},
      {"a=1,b=2,a=3", {{"a", "3", ""}, {"b", "2", ""}}, "duplicate key: the last value wins"},
      {"k", {}, "no '='"},
      {"=v", {}, "empty key"},
      {"k v=1", {}, "space inside the key"},
      {"(k)=v", {}, "key is not a token"},
      {"k\xC3\xA9=v", {}, "non-ASCII key"},
      {"k=a b", {}, "space inside the value"},
      {"k=\"q\"", {}, "DQUOTE"},
      {"k=a\\b", {}, "backslash"},
      {"k=caf\xC3\xA9", {}, "raw non-ASCII value"},
      {"k=a\tb", {}, "tab inside the value"},
      {"k=%zz", {}, "bad percent-encoding"},
      {"k=%4", {}, "truncated percent-encoding"},
      {"k=%", {}, "lone '%'"},
      {"k=v;", {}, "';' without a property"},
      {"k=v;;p", {}, "empty property"},
      {"k=v;p=\"x\"", {}, "property value with DQUOTE"},
      {"k=v;(p)", {}, "property key is not a token"},
      {"k=v;=x", {}, "property without a key"},
      {"bad key=1,good=2,k=a b,other=3",
       {{"good", "2", ""}, {"other", "3", ""}},
       "invalid members are skipped, the others kept"},
  };
  for (const auto& c : cases) {
    Baggage got = w3c::ParseBaggage(c.header);
    Baggage want = Make(c.expected);
    EXPECT_EQ(got, want) << c.rule << ": \"" << c.header << "\" got " << Describe(got) << " want "
                         << Describe(want);
    EXPECT_EQ(got.size(), c.expected.size()) << c.rule;
  }
}

TEST(W3CBaggageParse, KeepsOrder) {
  Baggage b = w3c::ParseBaggage("c=3,a=1,b=2");
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.entries()[0].key, "c");
  EXPECT_EQ(b.entries()[1].key, "a");
  EXPECT_EQ(b.entries()[2].key, "b");
}

TEST(W3CBaggageParse, CombinedHeaderFields) {
  // "baggage: userId=alice" + "baggage: serverNode=DF%2028,isProduction=false"
  Baggage b = w3c::ParseBaggage("userId=alice,serverNode=DF%2028,isProduction=false");
  EXPECT_EQ(b.size(), 3u);
  EXPECT_EQ(b.Get("serverNode"), "DF 28");
}

std::string ManyMembers(int n) {
  std::string h;
  for (int i = 0; i < n; ++i) {
    if (!h.empty()) h += ',';
    h += "k" + std::to_string(i) + "=v";
  }
  return h;
}

TEST(W3CBaggageParse, MemberLimit) {
  struct Case {
    int members;
    size_t kept;
  } cases[] = {{1, 1}, {63, 63}, {64, 64}, {65, 64}, {200, 64}};
  for (const auto& c : cases) {
    Baggage b = w3c::ParseBaggage(ManyMembers(c.members));
    EXPECT_EQ(b.size(), c.kept) << c.members << " members";
    EXPECT_TRUE(b.Get("k0").has_value()) << "the first members are kept";
  }
  Baggage b = w3c::ParseBaggage(ManyMembers(65));
  EXPECT_TRUE(b.Get("k63").has_value());
  EXPECT_FALSE(b.Get("k64").has_value());
}

TEST(W3CBaggageParse, ByteLimit) {
  // Two members of 4000 bytes plus a comma: 8001 bytes.
  const std::string a = "a=" + std::string(3998, 'x');
  const std::string b = "b=" + std::string(3998, 'y');
  ASSERT_EQ(a.size(), 4000u);
  EXPECT_EQ(w3c::ParseBaggage(a + "," + b).size(), 2u);

  // A third one would exceed 8192 bytes and is dropped; a small one that
  // still fits after it is kept.
  const std::string c = "c=" + std::string(3998, 'z');
  Baggage three = w3c::ParseBaggage(a + "," + b + "," + c + ",d=1");
  EXPECT_EQ(three.size(), 3u);
  EXPECT_FALSE(three.Get("c").has_value());
  EXPECT_EQ(three.Get("d"), "1");

  // Exactly 8192 bytes is within the limit; 8193 is not.
  const std::string exact = "e=" + std::string(8192 - 2, 'q');
  EXPECT_EQ(w3c::ParseBaggage(exact).size(), 1u);
  const std::string over = "e=" + std::string(8193 - 2, 'q');
  EXPECT_TRUE(w3c::ParseBaggage(over).empty());
}

// ---- Formatting ------------------------------------------------------------------

struct FormatCase {
  Entries entries;
  std::string expected;
  const char* rule;
};

TEST(W3CBaggageFormat, Table) {
  const FormatCase cases[] = {
      {{}, "", "empty baggage, empty header"},
      {{{"userId", "alice", ""}, {"serverNode", "DF 28", ""}, {"isProduction", "false", ""}},
       "userId=alice,serverNode=DF%2028,isProduction=false",
       "spec example"},
      {{{"k", "a b,c;d=e%f\"g\\h", ""}},
       "k=a%20b%2Cc%3Bd=e%25f%22g%5Ch",
       "characters outside baggage-octet and '%' are percent-encoded"},
      {{{"k", "\xE2\x82\xAC", ""}}, "k=%E2%82%AC", "UTF-8 is percent-encoded"},
      {{{"k", std::string("\0\t\n", 3), ""}}, "k=%00%09%0A", "control characters"},
      {{{"k", "", ""}}, "k=", "empty value"},
      {{{"k", "v", "p1;p2=x"}}, "k=v;p1;p2=x", "metadata after ';'"},
      {{{"k", "v", "bad,meta"}}, "k=v", "invalid metadata is left out"},
      {{{"bad key", "v", ""}, {"good", "1", ""}}, "good=1", "a key that is not a token is skipped"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(w3c::FormatBaggage(Make(c.entries)), c.expected) << c.rule;
  }
}

TEST(W3CBaggageFormat, Limits) {
  Baggage many;
  for (int i = 0; i < 70; ++i) many = many.Set("k" + std::to_string(i), "v");
  EXPECT_EQ(w3c::ParseBaggage(w3c::FormatBaggage(many)).size(), 64u);

  Baggage big = Baggage()
                    .Set("a", std::string(3998, 'x'))
                    .Set("b", std::string(3998, 'y'))
                    .Set("c", std::string(3998, 'z'))
                    .Set("d", "1");
  std::string header = w3c::FormatBaggage(big);
  EXPECT_LE(header.size(), w3c::kBaggageMaxBytes);
  Baggage back = w3c::ParseBaggage(header);
  EXPECT_EQ(back.size(), 3u);
  EXPECT_FALSE(back.Get("c").has_value());

  // Percent-encoding counts: 3000 spaces become 9000 bytes.
  EXPECT_EQ(w3c::FormatBaggage(Baggage().Set("s", std::string(3000, ' '))), "");
}

TEST(W3CBaggageFormat, RoundTrip) {
  const std::string headers[] = {
      "userId=alice,serverNode=DF%2028,isProduction=false",
      "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
      "k=%E2%82%AC%FF%41,z=,y=a=b",
      ManyMembers(80),
      "a=" + std::string(5000, '%'),
      "a=" + std::string(3000, 'x') + ",b=%FF%FF%FF" + std::string(1500, 'y') + ",c=1",
  };
  for (const auto& h : headers) {
    Baggage once = w3c::ParseBaggage(h);
    std::string formatted = w3c::FormatBaggage(once);
    EXPECT_LE(formatted.size(), w3c::kBaggageMaxBytes);
    EXPECT_EQ(w3c::ParseBaggage(formatted), once) << h.substr(0, 80);
  }
  Baggage made = Make({{"k", "a b,c;d=e%f\"g\\h\xE2\x82\xAC", "p;q=1"}, {"x", "", ""}});
  EXPECT_EQ(w3c::ParseBaggage(w3c::FormatBaggage(made)), made);
}

}  // namespace
}  // namespace prism::tracing
