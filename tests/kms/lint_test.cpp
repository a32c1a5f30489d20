// Policy lint against hand-written policies and the warnings a reviewer expects.
#include <gtest/gtest.h>

#include <set>

#include "kms/lint.h"

namespace modelseal::kms {
namespace {

const std::string kP(96, 'a');

// statement number (1-based; 0 for the policy) + code, for every warning.
std::set<std::string> Codes(const std::string& text) {
  auto p = ParsePolicy(text);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  std::set<std::string> out;
  for (const auto& w : LintPolicy(*p)) {
    out.insert(std::to_string(w.statement ? *w.statement + 1 : 0) + " " + w.code);
    EXPECT_FALSE(w.message.empty());
    if (w.statement) {
      EXPECT_EQ(w.sid, p->statements[*w.statement].sid);
    }
  }
  return out;
}

const std::string kDenyBare = R"({"Sid": "NoBare", "Effect": "Deny",
  "Principal": {"AWS": "arn:aws:iam::444455556666:role/c"}, "Action": "kms:Decrypt",
  "Resource": "*", "Condition": {"Null": {"kms:RecipientAttestation:NitroTPMPCR4": "true"}}})";
const std::string kAdmin = R"({"Sid": "Admin", "Effect": "Allow",
  "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "NotAction": "kms:Decrypt",
  "Resource": "*"})";

std::string Policy(const std::string& statement, bool with_deny = true) {
  return R"({"Version": "2012-10-17", "Statement": [)" + kAdmin + "," + statement +
         (with_deny ? "," + kDenyBare : "") + "]}";
}

std::string Attested(
    const std::string& condition,
    const std::string& principal = R"({"AWS": "arn:aws:iam::444455556666:role/c"})") {
  return R"({"Sid": "Attested", "Effect": "Allow", "Principal": )" + principal +
         R"(, "Action": "kms:Decrypt", "Resource": "*", "Condition": )" + condition + "}";
}

std::string Pcrs(std::initializer_list<int> pcrs, const std::string& op = "StringEquals") {
  std::string c = "{\"" + op + "\": {";
  bool first = true;
  for (int i : pcrs) {
    c += (first ? "" : ", ") + std::string("\"kms:RecipientAttestation:NitroTPMPCR") +
         std::to_string(i) + "\": \"" + kP + "\"";
    first = false;
  }
  return c + "}}";
}

TEST(Lint, GoodPolicyHasNoWarnings) {
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({4, 7, 12, 15})))), std::set<std::string>{});
}

TEST(Lint, EachFinding) {
  using S = std::set<std::string>;
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({15})))), S{"2 only-pcr15"});
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({4})))), S{"2 pcr4-without-pcr7-or-pcr12"});
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({4, 12})))), S{});
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({8, 15})))), S{"2 no-boot-pcr"});
  EXPECT_EQ(
      Codes(Policy(Attested(R"({"StringLike": {"kms:RecipientAttestation:NitroTPMPCR4": "aa*"},
                                      "StringEquals": {"kms:RecipientAttestation:NitroTPMPCR7": ")" +
                            kP + R"("}})"))),
      S{"2 pcr-wildcard"});
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({4, 7}, "ForAnyValue:StringEquals")))),
            (S{"2 pcr-for-any-value", "2 decrypt-without-pcr"}));
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({4, 7}, "StringEqualsIfExists")))),
            (S{"2 pcr-if-exists", "2 decrypt-without-pcr"}));
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({4, 7}), "\"*\""))), S{"2 principal-star"});
  EXPECT_EQ(Codes(Policy(Attested(Pcrs({4, 7})), false)), S{"0 no-deny-without-attestation"});
  // An owner statement that allows everything, Decrypt included, without PCRs.
  EXPECT_EQ(Codes(R"({"Statement": [{"Sid": "All", "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},)" +
                  kDenyBare + "]}"),
            S{"1 decrypt-without-pcr"});
  const std::string pcrs = Pcrs({4, 7});  // {"StringEquals": {...}}
  EXPECT_EQ(Codes(Policy(Attested(pcrs.substr(0, pcrs.size() - 2) +
                                  R"(, "kms:EncryptionContextKeys": "model"}})"))),
            S{"2 single-valued-operator-on-multivalued-key"});
}

}  // namespace
}  // namespace modelseal::kms
