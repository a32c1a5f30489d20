#include <gtest/gtest.h>

#include "kms/policy.h"

namespace modelseal::kms {
namespace {

const char* kKeyArn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const char* kConsumer = "arn:aws:iam::444455556666:role/consumer";
const std::string kPcr4(96, 'a');
const std::string kPcr7(96, 'b');

std::string AttestedPolicy() {
  return R"({
    "Version": "2012-10-17",
    "Statement": [
      {"Sid": "OwnerAdmin", "Effect": "Allow",
       "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
      {"Sid": "AttestedDecrypt", "Effect": "Allow",
       "Principal": {"AWS": ")" +
         std::string(kConsumer) + R"("},
       "Action": "kms:Decrypt", "Resource": "*",
       "Condition": {"StringEqualsIgnoreCase": {
          "kms:RecipientAttestation:NitroTPMPCR4": ")" +
         kPcr4 + R"(",
          "kms:RecipientAttestation:NitroTPMPCR7": ")" +
         kPcr7 + R"("}}},
      {"Sid": "DenyWithoutAttestation", "Effect": "Deny",
       "Principal": {"AWS": ")" +
         std::string(kConsumer) + R"("},
       "Action": "kms:Decrypt", "Resource": "*",
       "Condition": {"Null": {"kms:RecipientAttestation:NitroTPMPCR4": "true"}}}
    ]})";
}

RequestContext Decrypt(std::map<std::string, std::vector<std::string>> keys) {
  return {kConsumer, "kms:Decrypt", kKeyArn, std::move(keys)};
}

TEST(Policy, AttestedDecryptMatrix) {
  auto p = ParsePolicy(AttestedPolicy());
  ASSERT_TRUE(p.ok()) << p.error().message;
  const std::string pcr4 = "kms:RecipientAttestation:NitroTPMPCR4";
  const std::string pcr7 = "kms:RecipientAttestation:NitroTPMPCR7";

  auto ok = Evaluate(*p, Decrypt({{pcr4, {kPcr4}}, {pcr7, {kPcr7}}}));
  EXPECT_TRUE(ok.allowed());
  EXPECT_EQ(ok.sid, "AttestedDecrypt");
  EXPECT_EQ(ok.Describe(), "allowed by statement 2 (\"AttestedDecrypt\")");

  auto wrong = Evaluate(*p, Decrypt({{pcr4, {kPcr4}}, {pcr7, {std::string(96, 'c')}}}));
  EXPECT_EQ(wrong.effect, Effect::kImplicitDeny);
  ASSERT_EQ(wrong.trace[1].conditions.size(), 2u);
  EXPECT_TRUE(wrong.trace[1].conditions[0].matched);
  EXPECT_FALSE(wrong.trace[1].conditions[1].matched);

  auto missing = Evaluate(*p, Decrypt({}));
  EXPECT_EQ(missing.effect, Effect::kExplicitDeny);
  EXPECT_EQ(missing.sid, "DenyWithoutAttestation");

  // Condition keys are case-insensitive; the owner account root covers its principals.
  auto lower =
      Evaluate(*p, Decrypt({{"KMS:recipientattestation:nitrotpmpcr4", {kPcr4}}, {pcr7, {kPcr7}}}));
  EXPECT_TRUE(lower.allowed());
  RequestContext owner{"arn:aws:iam::111122223333:user/alice", "kms:PutKeyPolicy", kKeyArn, {}};
  EXPECT_TRUE(Evaluate(*p, owner).allowed());
  RequestContext stranger{"arn:aws:iam::999999999999:user/eve", "kms:Decrypt", kKeyArn, {}};
  EXPECT_FALSE(Evaluate(*p, stranger).allowed());
}

TEST(Policy, ExplicitDenyWins) {
  auto p = ParsePolicy(R"({"Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
    {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decr*", "Resource": "*"}]})");
  ASSERT_TRUE(p.ok()) << p.error().message;
  RequestContext r{kConsumer, "kms:Decrypt", kKeyArn, {}};
  EXPECT_EQ(Evaluate(*p, r).effect, Effect::kExplicitDeny);
  r.action = "kms:Encrypt";
  EXPECT_TRUE(Evaluate(*p, r).allowed());
}

TEST(Policy, OperatorsIfExistsAndSets) {
  auto eval = [](const std::string& cond, std::map<std::string, std::vector<std::string>> keys) {
    auto p =
        ParsePolicy(R"({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt",
                              "Resource": "*", "Condition": )" +
                    cond + "}}");
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    if (!p.ok()) return false;
    return Evaluate(*p, {kConsumer, "kms:Decrypt", kKeyArn, std::move(keys)}).allowed();
  };
  const std::string ctx = "kms:EncryptionContext:model";
  EXPECT_TRUE(
      eval(R"({"StringEquals": {"kms:EncryptionContext:model": ["a", "b"]}})", {{ctx, {"b"}}}));
  EXPECT_FALSE(eval(R"({"StringEquals": {"kms:EncryptionContext:model": "a"}})", {{ctx, {"A"}}}));
  EXPECT_TRUE(
      eval(R"({"StringEqualsIgnoreCase": {"kms:EncryptionContext:model": "a"}})", {{ctx, {"A"}}}));
  EXPECT_FALSE(eval(R"({"StringEquals": {"kms:EncryptionContext:model": "a"}})", {}));
  // Negated operators: NOR over values; a missing key makes them true.
  EXPECT_FALSE(
      eval(R"({"StringNotEquals": {"kms:EncryptionContext:model": ["a", "b"]}})", {{ctx, {"a"}}}));
  EXPECT_TRUE(
      eval(R"({"StringNotEquals": {"kms:EncryptionContext:model": ["a", "b"]}})", {{ctx, {"c"}}}));
  EXPECT_TRUE(eval(R"({"StringNotEquals": {"kms:EncryptionContext:model": "a"}})", {}));
  EXPECT_TRUE(eval(R"({"StringLike": {"kms:EncryptionContext:model": "llama-*-q?"}})",
                   {{ctx, {"llama-7b-q4"}}}));
  EXPECT_FALSE(eval(R"({"StringNotLike": {"kms:EncryptionContext:model": "llama-*"}})",
                    {{ctx, {"llama-7b"}}}));
  EXPECT_TRUE(eval(R"({"StringEqualsIfExists": {"kms:EncryptionContext:model": "a"}})", {}));
  EXPECT_FALSE(
      eval(R"({"StringEqualsIfExists": {"kms:EncryptionContext:model": "a"}})", {{ctx, {"b"}}}));
  EXPECT_TRUE(
      eval(R"({"Bool": {"aws:SecureTransport": "true"}})", {{"aws:SecureTransport", {"TRUE"}}}));
  EXPECT_TRUE(eval(R"({"Null": {"kms:EncryptionContext:model": "false"}})", {{ctx, {"x"}}}));
  EXPECT_FALSE(eval(R"({"Null": {"kms:EncryptionContext:model": "false"}})", {}));
  const std::string keys = "kms:EncryptionContextKeys";
  EXPECT_TRUE(eval(R"({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "model"}})",
                   {{keys, {"owner", "model"}}}));
  EXPECT_FALSE(eval(R"({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "model"}})", {}));
  EXPECT_FALSE(eval(R"({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "model"}})",
                    {{keys, {"owner", "model"}}}));
  EXPECT_TRUE(
      eval(R"({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["model", "owner"]}})",
           {{keys, {"owner", "model"}}}));
  EXPECT_TRUE(eval(R"({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "model"}})", {}));
  // Several keys under one operator, and several operators: AND.
  EXPECT_FALSE(eval(
      R"({"StringEquals": {"kms:EncryptionContext:model": "a"}, "Bool": {"aws:SecureTransport": "true"}})",
      {{ctx, {"a"}}}));
}

TEST(Policy, MalformedPoliciesAreNamed) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{", "policy is not valid JSON"},
      {"[]", "policy must be a JSON object"},
      {R"({"Statement": []})", "Statement must be an object or a non-empty list"},
      {R"({"Version": "2020-01-01", "Statement": {}})", "Version must be"},
      {R"({"Statement": {"Effect": "Maybe", "Principal": "*", "Action": "kms:*", "Resource": "*"}})",
       "statement 1: Effect must be"},
      {R"({"Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}})",
       "statement 1: Principal is required"},
      {R"({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}})",
       "is not a kms: action"},
      {R"({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
           "Condition": {"NumericEquals": {"a": "1"}}}})",
       "unsupported condition operator \"NumericEquals\""},
      {R"({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
           "Condition": {"StringEquals": {"a": 5}}}})",
       "must be a string or a list of strings"},
      {R"({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Colour": 1}})",
       "unknown element \"Colour\""},
  };
  for (const auto& c : cases) {
    auto p = ParsePolicy(c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.error().reason, "malformed-policy");
    EXPECT_NE(p.error().message.find(c.message), std::string::npos) << p.error().message;
  }
  std::string big =
      R"({"Statement": {"Sid": ")" + std::string(33000, 'x') +
      R"(", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}})";
  auto p = ParsePolicy(big);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("the limit is 32768"), std::string::npos);
}

TEST(Policy, JsonRoundTrip) {
  auto p = ParsePolicy(AttestedPolicy());
  ASSERT_TRUE(p.ok());
  auto again = ParsePolicy(PolicyToJson(*p));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(PolicyToJson(*again), PolicyToJson(*p));
  EXPECT_EQ(again->statements.size(), 3u);
  EXPECT_EQ(again->statements[1].conditions.size(), 2u);
}

TEST(Wildcard, Matches) {
  EXPECT_TRUE(WildcardMatch("kms:*", "kms:Decrypt", true));
  EXPECT_TRUE(WildcardMatch("KMS:decrypt", "kms:Decrypt", true));
  EXPECT_FALSE(WildcardMatch("kms:Encrypt", "kms:Decrypt", true));
  EXPECT_TRUE(WildcardMatch("a*b*c", "axxbyyc", false));
  EXPECT_FALSE(WildcardMatch("a*b*c", "axxbyy", false));
  EXPECT_TRUE(WildcardMatch("?", "x", false));
  EXPECT_FALSE(WildcardMatch("?", "", false));
  EXPECT_TRUE(WildcardMatch("*", "", false));
}

}  // namespace
}  // namespace modelseal::kms
