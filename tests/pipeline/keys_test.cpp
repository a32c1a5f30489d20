// The key policies modelseal writes, against policies written out by hand here from
// the AWS KMS documentation's shapes (key policy elements; the NitroTPM condition keys
// kms:RecipientAttestation:NitroTPMPCR<N>, lower-case hex), compared as JSON values.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "pipeline/pipeline.h"

namespace modelseal::pipeline {
namespace {

using json = nlohmann::json;

constexpr char kOwner[] = "arn:aws:iam::111122223333:role/model-owner";
constexpr char kConsumer[] = "arn:aws:iam::444455556666:role/model-consumer";

constexpr char kNewKeyPolicy[] = R"({
  "Version": "2012-10-17",
  "Id": "modelseal-model-key",
  "Statement": [
    {
      "Sid": "OwnerAdministers",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::111122223333:role/model-owner"},
      "NotAction": "kms:Decrypt",
      "Resource": "*"
    },
    {
      "Sid": "ConsumerReadsKey",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::444455556666:role/model-consumer"},
      "Action": ["kms:DescribeKey", "kms:GetKeyPolicy"],
      "Resource": "*"
    },
    {
      "Sid": "DenyDecryptWithoutAttestation",
      "Effect": "Deny",
      "Principal": {"AWS": "arn:aws:iam::444455556666:role/model-consumer"},
      "Action": "kms:Decrypt",
      "Resource": "*",
      "Condition": {"Null": {"kms:RecipientAttestation:NitroTPMPCR4": "true"}}
    }
  ]
})";

TEST(KeyPolicy, ANewModelKeysPolicyIsTheOneWrittenOutByHand) {
  EXPECT_EQ(json::parse(ModelKeyPolicy(kOwner, kConsumer)), json::parse(kNewKeyPolicy));
  // Without a consumer: the owner's statement alone.
  json owner_only = json::parse(kNewKeyPolicy);
  owner_only["Statement"] = json::array({owner_only["Statement"][0]});
  EXPECT_EQ(json::parse(ModelKeyPolicy(kOwner, "")), owner_only);
}

TEST(KeyPolicy, AllowAttestedAddsOneStatementPinningEachPcrInLowerCaseHex) {
  const std::string pcr4(96, 'A'), pcr7 = std::string(48, '0') + std::string(48, 'f');
  auto policy = AllowAttested(ModelKeyPolicy(kOwner, kConsumer), kConsumer, {{7, pcr7}, {4, pcr4}});
  ASSERT_TRUE(policy.ok()) << policy.error().ToString();
  json want = json::parse(kNewKeyPolicy);
  want["Statement"].push_back(json::parse(R"({
    "Sid": "AttestedDecrypt",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::444455556666:role/model-consumer"},
    "Action": "kms:Decrypt",
    "Resource": "*",
    "Condition": {"StringEqualsIgnoreCase": {
      "kms:RecipientAttestation:NitroTPMPCR4":
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "kms:RecipientAttestation:NitroTPMPCR7":
        "000000000000000000000000000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffff"
    }}
  })"));
  EXPECT_EQ(json::parse(*policy), want);

  // Again with the same Sid: the statement is replaced, not added.
  auto again = AllowAttested(*policy, kConsumer, {{4, std::string(96, '1')}});
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  const json j = json::parse(*again);
  ASSERT_EQ(j["Statement"].size(), 4u);
  EXPECT_EQ(j["Statement"][3]["Condition"],
            json::parse(R"({"StringEqualsIgnoreCase": {"kms:RecipientAttestation:NitroTPMPCR4":
              "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"}})"));
}

TEST(KeyPolicy, AllowAttestedRefusesAStatementWithoutABootPcr) {
  auto policy = AllowAttested(ModelKeyPolicy(kOwner, kConsumer), kConsumer,
                              {{15, std::string(96, 'a')}, {12, std::string(96, 'b')}});
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.error().reason, "no-boot-pcr");
}

}  // namespace
}  // namespace modelseal::pipeline
