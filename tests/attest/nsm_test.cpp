// The NSM messages against CBOR written by hand from aws-nitro-enclaves-nsm-api
// 0.5's Request/Response as ciborium serializes them (externally tagged enum, a
// struct variant as a definite-length map in field order, Option::None as null,
// ByteBuf as a byte string, a unit variant as its name).
#include <gtest/gtest.h>

#include "attest/cbor.h"
#include "attest/nsm.h"

namespace modelseal::attest {
namespace {

Bytes Hex(const std::string& spaced) {
  std::string h;
  for (char c : spaced) {
    if (c != ' ') h.push_back(c);
  }
  return *FromHex(h);
}

// a1                          map(1)
//   6b "Attestation"          text(11)
//   a3                        map(3)
//     69 "user_data"  ...     text(9)
//     65 "nonce"      ...     text(5)
//     6a "public_key" ...     text(10)
const std::string kAttestation = "a1 6b 4174746573746174696f6e a3";
const std::string kUserData = "69 757365725f64617461";
const std::string kNonce = "65 6e6f6e6365";
const std::string kPublicKey = "6a 7075626c69635f6b6579";

TEST(NsmRequest, EmptyRequestIsByteForByteTheTools) {
  EXPECT_EQ(EncodeNsmAttestationRequest({}),
            Hex(kAttestation + kUserData + "f6" + kNonce + "f6" + kPublicKey + "f6"));
}

TEST(NsmRequest, FieldsInDeclarationOrderWithShortestHeads) {
  DocumentRequest r;
  r.user_data = Bytes(24, 0x75);    // 24: one length byte (58 18)
  r.nonce = Bytes{1, 2};            // 2: in the head (42)
  r.public_key = Bytes(300, 0x07);  // 300: two length bytes (59 012c)
  std::string user_data;
  for (int i = 0; i < 24; ++i) user_data += "75";
  std::string public_key;
  for (int i = 0; i < 300; ++i) public_key += "07";
  EXPECT_EQ(EncodeNsmAttestationRequest(r),
            Hex(kAttestation + kUserData + "5818" + user_data + kNonce + "420102" + kPublicKey +
                "59012c" + public_key));
}

TEST(NsmResponse, DocumentIsTakenAndTheRestOfTheIndexIgnored) {
  // a1 6b "Attestation" a1 68 "document" 42 0908, then the index's other bytes.
  Bytes nv = Hex("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 42 0908");
  nv.resize(8192, 0xff);
  auto doc = DecodeNsmAttestationResponse(nv);
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  EXPECT_EQ(*doc, (Bytes{9, 8}));
}

TEST(NsmResponse, EveryErrorCodeGetsAClearMessage) {
  const std::pair<const char*, const char*> cases[] = {
      {"Success", "with the code Success"},
      {"InvalidArgument", "at most 1024 bytes each"},
      {"InvalidIndex", "PCR error"},
      {"InvalidResponse", "lost track of the request"},
      {"ReadOnlyIndex", "PCR error"},
      {"InvalidOperation", "cannot produce attestation documents"},
      {"BufferTooSmall", "does not fit the 8192-byte message buffer"},
      {"InputTooLarge", "the request is too large"},
      {"InternalError", "failed internally"},
      {"SomethingNew", "does not know"},
  };
  for (const auto& [code, says] : cases) {
    // a1 65 "Error" 6x <code>
    Bytes nv = Hex("a1 65 4572726f72");
    nv.push_back(static_cast<uint8_t>(0x60 + std::string(code).size()));
    nv.insert(nv.end(), code, code + std::string(code).size());
    nv.resize(8192, 0);
    auto r = DecodeNsmAttestationResponse(nv);
    ASSERT_FALSE(r.ok()) << code;
    EXPECT_EQ(r.error().reason, "nsm-error") << code;
    EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(std::string("(NSM error ") + code + ")"), std::string::npos)
        << r.error().message;
  }
}

TEST(NsmResponse, AnythingElseIsMalformed) {
  using cbor::Value;
  const Bytes cases[] = {
      Bytes(64, 0xff),                                                     // not CBOR
      Hex("a1 65 4572726f72 01"),                                          // Error: 1
      Hex("a1 6b 4174746573746174696f6e a0"),                              // no document
      Hex("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 40"),       // empty document
      Hex("a1 6b 4174746573746174696f6e a1 68 646f63756d656e74 62 6869"),  // text document
      cbor::Encode(Value::Map(
          {{Value::Tstr("Attestation"), Value::Map({{Value::Tstr("document"), Value::Bstr({1})}})},
           {Value::Tstr("Error"), Value::Tstr("InternalError")}})),
      cbor::Encode(Value::Map({{Value::Tstr("DescribeNSM"), Value::Map({})}})),
  };
  for (const Bytes& nv : cases) {
    auto r = DecodeNsmAttestationResponse(nv);
    ASSERT_FALSE(r.ok()) << ToHex(nv);
    EXPECT_EQ(r.error().reason, "bad-nsm-response") << ToHex(nv);
  }
}

}  // namespace
}  // namespace modelseal::attest
