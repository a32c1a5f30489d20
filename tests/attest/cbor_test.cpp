#include <gtest/gtest.h>

#include "attest/cbor.h"

namespace modelseal::attest::cbor {
namespace {

Bytes H(const char* hex) {
  return *FromHex(hex);
}

TEST(Cbor, RoundTripsEveryType) {
  Value v = Value::Map({
      {Value::Uint(1), Value::Int(-35)},
      {Value::Tstr("bytes"), Value::Bstr(Bytes(300, 7))},
      {Value::Tstr("arr"),
       Value::Array({Value::Null(), Value::Bool(true), Value::Uint(1ULL << 40)})},
      {Value::Tstr("neg"), Value::Int(-1000000)},
  });
  const Bytes enc = Encode(v);
  auto back = Decode(enc);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(Encode(*back), enc);
  EXPECT_EQ(back->FindInt(1)->uint, 34u);
  EXPECT_EQ(back->Find("bytes")->bytes.size(), 300u);
  EXPECT_EQ(back->Find("arr")->items[2].uint, 1ULL << 40);

  // The simple values and a tag, against RFC 8949 Appendix A's encodings:
  // false f4, true f5, null f6, undefined f7, tag 18 d2, h'' 40, -35 3822, "a" 6161.
  Value undefined;
  undefined.type = Type::kUndefined;
  Value tagged;
  tagged.type = Type::kTag;
  tagged.uint = 18;
  tagged.items = {Value::Bstr({})};
  const Value simple = Value::Array({Value::Bool(false), Value::Bool(true), Value::Null(),
                                     undefined, tagged, Value::Int(-35), Value::Tstr("a")});
  const Bytes simple_enc = Encode(simple);
  EXPECT_EQ(simple_enc, H("87f4f5f6f7d24038226161"));
  auto simple_back = Decode(simple_enc);
  ASSERT_TRUE(simple_back.ok()) << simple_back.error().ToString();
  ASSERT_EQ(simple_back->items.size(), 7u);
  EXPECT_EQ(simple_back->items[0].type, Type::kBool);
  EXPECT_FALSE(simple_back->items[0].boolean);
  EXPECT_EQ(simple_back->items[1].type, Type::kBool);
  EXPECT_TRUE(simple_back->items[1].boolean);
  EXPECT_EQ(simple_back->items[2].type, Type::kNull);
  EXPECT_EQ(simple_back->items[3].type, Type::kUndefined);
  EXPECT_EQ(simple_back->items[4].type, Type::kTag);
  EXPECT_EQ(simple_back->items[4].uint, 18u);
  EXPECT_TRUE(simple_back->items[4].items.at(0).is_bytes());
  EXPECT_EQ(Encode(*simple_back), simple_enc);
}

TEST(Cbor, KnownEncodings) {
  EXPECT_EQ(Encode(Value::Int(-35)), H("3822"));
  EXPECT_EQ(Encode(Value::Map({{Value::Uint(1), Value::Int(-35)}})), H("a1013822"));
  EXPECT_EQ(Encode(Value::Uint(23)), H("17"));
  EXPECT_EQ(Encode(Value::Uint(24)), H("1818"));
  EXPECT_EQ(Encode(Value::Uint(65536)), H("1a00010000"));
  EXPECT_EQ(Encode(Value::Tstr("a")), H("6161"));
}

TEST(Cbor, TaggedItem) {
  auto v = Decode(H("d28440a0f6f6"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->type, Type::kTag);
  EXPECT_EQ(v->uint, 18u);
  EXPECT_TRUE(v->items[0].is_array());
}

TEST(Cbor, RejectsMalformed) {
  for (const char* hex : {
           "",                    // empty
           "5f4101ff",            // indefinite byte string
           "9f01ff",              // indefinite array
           "1817",                // non-shortest integer
           "190017",              // non-shortest 2-byte
           "f93c00",              // half float
           "fb3ff0000000000000",  // double
           "1c",                  // reserved info
           "45010203",            // string longer than input
           "9b00000000ffffffff",  // array count beyond input
           "bb00000000ffffffff",  // map count beyond input
           "0101",                // trailing byte
           "62c328",              // invalid UTF-8
           "ff",                  // stray break
           "f0",                  // unassigned simple value
       }) {
    auto v = Decode(H(hex));
    EXPECT_FALSE(v.ok()) << hex;
    if (!v.ok()) {
      EXPECT_EQ(v.error().reason, "cbor-malformed") << hex;
    }
  }
}

TEST(Cbor, BoundsNesting) {
  Bytes deep(100, 0x81);  // [[[[...
  deep.push_back(0x00);
  auto v = Decode(deep);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("nesting"), std::string::npos);
}

TEST(Cbor, DecodePrefixReportsLength) {
  size_t used = 0;
  auto v = DecodePrefix(H("4201020000"), &used);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(used, 3u);
}

}  // namespace
}  // namespace modelseal::attest::cbor
