// The key service end to end below HTTP: policy matrix, attested release, bad
// input, audit log.
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attest/attest.h"
#include "common/clock.h"
#include "common/ossl.h"
#include "kms/errors.h"
#include "kms/recipient.h"
#include "kms/service.h"

namespace modelseal::kms {
namespace {

using nlohmann::json;

const std::string kOwner = "arn:aws:iam::111122223333:user/owner";
const std::string kConsumer = "arn:aws:iam::444455556666:role/consumer";

Bytes Pcr(uint8_t fill) {
  return Bytes(48, fill);
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ms-svc-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto dev = attest::DevAuthority::Open((dir_ / "state").string());
    ASSERT_TRUE(dev.ok()) << dev.error().ToString();
    dev_ = std::move(*dev);
    service_ = MakeService(true);
    rsa_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(rsa_.get(), &der);
    spki_.assign(der, der + len);
    OPENSSL_free(der);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<KeyService> MakeService(bool trust_dev) {
    auto store = KeyStore::Open((dir_ / (trust_dev ? "keys" : "keys")).string(), "eu-west-1",
                                "111122223333");
    EXPECT_TRUE(store.ok());
    ServiceConfig cfg;
    if (trust_dev) cfg.extra_roots.push_back(dev_->root());
    cfg.audit_log_path = (dir_ / "audit.log").string();
    return std::make_unique<KeyService>(std::move(*store), cfg);
  }

  json Call(KeyService& svc, const std::string& op, const json& body, const std::string& who,
            int want = 200) {
    const ServiceReply r = svc.Handle(op, body.dump(), who);
    EXPECT_EQ(r.status, want) << op << ": " << r.body;
    return json::parse(r.body);
  }

  std::string Document(std::map<uint32_t, Bytes> pcrs) {
    attest::DocumentRequest req;
    req.public_key = spki_;
    auto doc = dev_->Issue(pcrs, req);
    EXPECT_TRUE(doc.ok()) << doc.error().ToString();
    return Base64Encode(*doc);
  }

  // Owner creates a key whose policy releases Decrypt to the consumer only with
  // PCR4 = aa.., PCR7 = bb.. and the model context, and denies it without attestation.
  std::string AttestedKey() {
    json key = Call(*service_, "CreateKey", {{"Description", "model key"}}, kOwner);
    const std::string id = key["KeyMetadata"]["KeyId"];
    json policy = {
        {"Version", "2012-10-17"},
        {"Statement",
         {{{"Sid", "Owner"},
           {"Effect", "Allow"},
           {"Principal", {{"AWS", "arn:aws:iam::111122223333:root"}}},
           {"Action", "kms:*"},
           {"Resource", "*"}},
          {{"Sid", "AttestedDecrypt"},
           {"Effect", "Allow"},
           {"Principal", {{"AWS", kConsumer}}},
           {"Action", "kms:Decrypt"},
           {"Resource", "*"},
           {"Condition",
            {{"StringEqualsIgnoreCase",
              {{"kms:RecipientAttestation:NitroTPMPCR4", ToHex(Pcr(0xaa))},
               {"kms:RecipientAttestation:NitroTPMPCR7", ToHex(Pcr(0xbb))}}},
             {"StringEquals", {{"kms:EncryptionContext:model", "tiny"}}}}}},
          {{"Sid", "NoPlaintextToConsumer"},
           {"Effect", "Deny"},
           {"Principal", {{"AWS", kConsumer}}},
           {"Action", "kms:Decrypt"},
           {"Resource", "*"},
           {"Condition", {{"Null", {{"kms:RecipientAttestation:NitroTPMPCR4", "true"}}}}}}}}};
    Call(*service_, "PutKeyPolicy", {{"KeyId", id}, {"Policy", policy.dump()}}, kOwner);
    return id;
  }

  std::vector<json> AuditLines() {
    std::ifstream f(dir_ / "audit.log");
    std::vector<json> out;
    std::string line;
    while (std::getline(f, line)) out.push_back(json::parse(line));
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<attest::DevAuthority> dev_;
  std::unique_ptr<KeyService> service_;
  PkeyPtr rsa_;
  Bytes spki_;
};

TEST_F(ServiceTest, AttestedDecryptReleasesOnlyToTheRecipient) {
  const std::string id = AttestedKey();
  json dk = Call(
      *service_, "GenerateDataKey",
      {{"KeyId", id}, {"KeySpec", "AES_256"}, {"EncryptionContext", {{"model", "tiny"}}}}, kOwner);
  const Bytes plaintext = *Base64Decode(dk["Plaintext"].get<std::string>());
  ASSERT_EQ(plaintext.size(), 32u);

  json ok =
      Call(*service_, "Decrypt",
           {{"CiphertextBlob", dk["CiphertextBlob"]},
            {"EncryptionContext", {{"model", "tiny"}}},
            {"Recipient",
             {{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"},
              {"AttestationDocument", Document({{4, Pcr(0xaa)}, {7, Pcr(0xbb)}, {15, Pcr(0)}})}}}},
           kConsumer);
  EXPECT_FALSE(ok.contains("Plaintext"));
  ASSERT_TRUE(ok.contains("CiphertextForRecipient"));
  auto opened =
      OpenEnvelope(*Base64Decode(ok["CiphertextForRecipient"].get<std::string>()), rsa_.get());
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  EXPECT_EQ(Bytes(opened->data(), opened->data() + opened->size()), plaintext);

  const auto audit = AuditLines();
  ASSERT_FALSE(audit.empty());
  const json& last = audit.back();
  EXPECT_EQ(last["operation"], "Decrypt");
  EXPECT_EQ(last["decision"], "allow");
  EXPECT_EQ(last["statement"], "2 AttestedDecrypt");
  EXPECT_EQ(last["principal"], kConsumer);
  EXPECT_TRUE(last["attestation"]["development"].get<bool>());
  EXPECT_EQ(last["attestation"]["pcrs"]["4"], ToHex(Pcr(0xaa)));
  EXPECT_EQ(last["attestation"]["module_id"].get<std::string>().rfind("DEVELOPMENT-", 0), 0u);
  for (const auto& line : audit) {
    EXPECT_EQ(line.dump().find(dk["Plaintext"].get<std::string>()), std::string::npos)
        << "key material in audit log";
  }
}

TEST_F(ServiceTest, PolicyMatrixDeniesAndAudits) {
  const std::string id = AttestedKey();
  json dk = Call(*service_, "GenerateDataKey",
                 {{"KeyId", id}, {"NumberOfBytes", 32}, {"EncryptionContext", {{"model", "tiny"}}}},
                 kOwner);
  auto decrypt = [&](KeyService& svc, const json& extra, const std::string& who) {
    json body = {{"CiphertextBlob", dk["CiphertextBlob"]},
                 {"EncryptionContext", {{"model", "tiny"}}}};
    if (extra.contains("Recipient")) body["Recipient"] = extra["Recipient"];
    return Call(svc, "Decrypt", body, who, 400);
  };
  auto recipient = [&](std::map<uint32_t, Bytes> pcrs) {
    return json{{"Recipient",
                 {{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"},
                  {"AttestationDocument", Document(pcrs)}}}};
  };

  // One wrong PCR: no statement allows it.
  json wrong = decrypt(*service_, recipient({{4, Pcr(0xaa)}, {7, Pcr(0xbc)}}), kConsumer);
  EXPECT_EQ(wrong["__type"], "AccessDeniedException");
  EXPECT_NE(wrong["message"].get<std::string>().find("implicit deny"), std::string::npos);
  // No Recipient: the explicit Deny decides.
  json bare = decrypt(*service_, json::object(), kConsumer);
  EXPECT_EQ(bare["__type"], "AccessDeniedException");
  EXPECT_NE(bare["message"].get<std::string>().find("explicit deny"), std::string::npos);
  // An encryption context other than the blob's: the ciphertext check comes first,
  // so the answer does not depend on (and does not reveal) the policy.
  json body = {{"CiphertextBlob", dk["CiphertextBlob"]},
               {"EncryptionContext", {{"model", "other"}}}};
  const json good = recipient({{4, Pcr(0xaa)}, {7, Pcr(0xbb)}});
  body["Recipient"] = good["Recipient"];
  EXPECT_EQ(Call(*service_, "Decrypt", body, kConsumer, 400)["__type"],
            "InvalidCiphertextException");
  // The owner with a context other than the one the blob was made under.
  json mismatch = {{"CiphertextBlob", dk["CiphertextBlob"]},
                   {"EncryptionContext", {{"model", "other"}}}};
  EXPECT_EQ(Call(*service_, "Decrypt", mismatch, kOwner, 400)["__type"],
            "InvalidCiphertextException");
  // A development document at a service that does not trust the development root.
  auto strict = MakeService(false);
  json dev_doc = decrypt(*strict, recipient({{4, Pcr(0xaa)}, {7, Pcr(0xbb)}}), kConsumer);
  EXPECT_EQ(dev_doc["__type"], "AccessDeniedException");
  EXPECT_NE(dev_doc["message"].get<std::string>().find("did not verify"), std::string::npos)
      << dev_doc;

  int denies = 0;
  for (const auto& line : AuditLines()) {
    if (line["operation"] == "Decrypt" && line["decision"] == "deny") ++denies;
  }
  EXPECT_GE(denies, 2);
}

TEST_F(ServiceTest, ExplicitDenyBeatsAllow) {
  json key = Call(*service_, "CreateKey", json::object(), kOwner);
  const std::string id = key["KeyMetadata"]["KeyId"];
  json policy = {{"Statement",
                  {{{"Effect", "Allow"},
                    {"Principal", {{"AWS", "111122223333"}}},
                    {"Action", "kms:*"},
                    {"Resource", "*"}},
                   {{"Sid", "NoEncrypt"},
                    {"Effect", "Deny"},
                    {"Principal", "*"},
                    {"Action", "kms:Encrypt"},
                    {"Resource", "*"}}}}};
  const json plain = {{"KeyId", id}, {"Plaintext", Base64Encode(Bytes{1, 2, 3})}};
  // Allowed under the key's first policy (which the service has now parsed and kept).
  Call(*service_, "Encrypt", plain, kOwner);
  Call(*service_, "PutKeyPolicy", {{"KeyId", id}, {"Policy", policy.dump()}}, kOwner);
  json r = Call(*service_, "Encrypt", plain, kOwner, 400);
  EXPECT_EQ(r["__type"], "AccessDeniedException");
  EXPECT_NE(r["message"].get<std::string>().find("NoEncrypt"), std::string::npos);
  // A policy change takes effect at once, in both directions.
  policy["Statement"].erase(1);
  Call(*service_, "PutKeyPolicy", {{"KeyId", id}, {"Policy", policy.dump()}}, kOwner);
  Call(*service_, "Encrypt", plain, kOwner);
}

TEST_F(ServiceTest, OperationsAndTheirShapes) {
  json key = Call(*service_, "CreateKey", {{"Description", "d"}}, kOwner);
  const std::string id = key["KeyMetadata"]["KeyId"];
  EXPECT_EQ(key["KeyMetadata"]["KeyState"], "Enabled");
  EXPECT_EQ(key["KeyMetadata"]["AWSAccountId"], "111122223333");
  Call(*service_, "CreateAlias", {{"AliasName", "alias/tiny"}, {"TargetKeyId", id}}, kOwner);
  EXPECT_EQ(
      Call(*service_, "DescribeKey", {{"KeyId", "alias/tiny"}}, kOwner)["KeyMetadata"]["KeyId"],
      id);
  EXPECT_EQ(Call(*service_, "ListAliases", json::object(), kOwner)["Aliases"][0]["TargetKeyId"],
            id);
  json enc = Call(*service_, "Encrypt",
                  {{"KeyId", "alias/tiny"}, {"Plaintext", Base64Encode(Bytes{7, 8})}}, kOwner);
  json dec = Call(*service_, "Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}}, kOwner);
  EXPECT_EQ(dec["Plaintext"], Base64Encode(Bytes{7, 8}));
  EXPECT_EQ(dec["KeyId"], key["KeyMetadata"]["Arn"]);
  json pol = Call(*service_, "GetKeyPolicy", {{"KeyId", id}}, kOwner);
  EXPECT_NE(pol["Policy"].get<std::string>().find("arn:aws:iam::111122223333:root"),
            std::string::npos);
  // The key's own policy does not let a stranger use it.
  EXPECT_EQ(Call(*service_, "DescribeKey", {{"KeyId", id}}, "arn:aws:iam::999999999999:user/eve",
                 400)["__type"],
            "AccessDeniedException");
  for (int i = 0; i < 4; ++i) Call(*service_, "CreateKey", json::object(), kOwner);
  json page = Call(*service_, "ListKeys", {{"Limit", 2}}, kOwner);
  EXPECT_EQ(page["Keys"].size(), 2u);
  EXPECT_TRUE(page["Truncated"].get<bool>());
  json rest = Call(*service_, "ListKeys", {{"Marker", page["NextMarker"]}}, kOwner);
  EXPECT_EQ(rest["Keys"].size(), 3u);
  EXPECT_FALSE(rest["Truncated"].get<bool>());
  json del =
      Call(*service_, "ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 7}}, kOwner);
  EXPECT_EQ(del["KeyState"], "PendingDeletion");
  EXPECT_EQ(Call(*service_, "Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}}, kOwner,
                 400)["__type"],
            "KMSInvalidStateException");
}

// Dates come from the clock: CreationDate at creation, DeletionDate the pending window
// later, both in epoch seconds as AWS returns them. 1767225600 is 2026-01-01T00:00:00Z and
// 1767830400 is seven days later (date -u -d 2026-01-08 +%s).
TEST_F(ServiceTest, KeyDatesComeFromTheClock) {
  std::string id;
  {
    ScopedWallClock at(1767225600000ULL);
    json key = Call(*service_, "CreateKey", json::object(), kOwner);
    id = key["KeyMetadata"]["KeyId"];
    EXPECT_EQ(key["KeyMetadata"]["CreationDate"], 1767225600.0);
    json del =
        Call(*service_, "ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 7}}, kOwner);
    EXPECT_EQ(del["DeletionDate"], 1767830400.0);
  }
  json meta = Call(*service_, "DescribeKey", {{"KeyId", id}}, kOwner)["KeyMetadata"];
  EXPECT_EQ(meta["CreationDate"], 1767225600.0);
  EXPECT_EQ(meta["DeletionDate"], 1767830400.0);
  // The clock runs again: a key made now is dated after 2026-11-01.
  json later = Call(*service_, "CreateKey", json::object(), kOwner);
  EXPECT_GT(later["KeyMetadata"]["CreationDate"].get<double>(), 1793491200.0);
}

// The error types travel as codes; their names are AWS's (CommonErrors.html and the
// operations' pages), written out here.
TEST(AwsErrorTypes, NamesAreAwsAndTypeOfReadsOnlyKmsErrors) {
  const std::vector<std::pair<aws_error::Type, std::string>> names = {
      {aws_error::kAccessDenied, "AccessDeniedException"},
      {aws_error::kInternal, "KMSInternalException"},
      {aws_error::kInvalidState, "KMSInvalidStateException"},
      {aws_error::kDryRun, "DryRunOperationException"},
      {aws_error::kMalformedPolicyDocument, "MalformedPolicyDocumentException"},
      {aws_error::kRequestEntityTooLarge, "RequestEntityTooLargeException"},
      {aws_error::kTag, "TagException"},
  };
  for (const auto& [type, name] : names) {
    EXPECT_EQ(aws_error::Name(type), name);
    const Error e = aws_error::Make(type, "m");
    EXPECT_EQ(e.reason, name);
    EXPECT_EQ(aws_error::TypeOf(e), type) << name;
    EXPECT_EQ(e.code,
              type == aws_error::kInternal ? ErrorCode::kInternal : ErrorCode::kInvalidArgument);
  }
  // Another module's error with the same text, or a name this service never sends.
  EXPECT_EQ(aws_error::TypeOf(
                MakeError(ErrorCode::kPermissionDenied, "store", "AccessDeniedException", "m")),
            std::nullopt);
  EXPECT_EQ(
      aws_error::TypeOf(MakeError(ErrorCode::kInternal, "kms", "LimitExceededException", "m")),
      std::nullopt);
}

TEST_F(ServiceTest, BadInputGetsAwsErrorsAndChangesNothing) {
  json key = Call(*service_, "CreateKey", json::object(), kOwner);
  const std::string id = key["KeyMetadata"]["KeyId"];
  const std::string before = Call(*service_, "GetKeyPolicy", {{"KeyId", id}}, kOwner)["Policy"];
  struct Case {
    std::string op, body, type;
  };
  const std::vector<Case> cases = {
      {"CreateKey", "{not json", "SerializationException"},
      {"CreateKey", "[1,2]", "SerializationException"},
      {"DescribeKey", R"({"KeyId": 5})", "SerializationException"},
      {"DescribeKey", "{}", "ValidationException"},
      {"DescribeKey", R"({"KeyId": "no-such-key"})", "NotFoundException"},
      {"Encrypt", R"({"KeyId": ")" + id + R"(", "Plaintext": "***"})", "SerializationException"},
      {"Encrypt",
       R"({"KeyId": ")" + id + R"(", "Plaintext": "AA==", "EncryptionContext": {"a": 1}})",
       "SerializationException"},
      {"Decrypt", R"({"CiphertextBlob": "AAAAAAAA"})", "InvalidCiphertextException"},
      {"GenerateDataKey", R"({"KeyId": ")" + id + R"("})", "ValidationException"},
      {"GenerateDataKey", R"({"KeyId": ")" + id + R"(", "NumberOfBytes": 5000})",
       "ValidationException"},
      {"PutKeyPolicy", R"({"KeyId": ")" + id + R"(", "Policy": "{\"Statement\": 3}"})",
       "MalformedPolicyDocumentException"},
      {"PutKeyPolicy",
       R"({"KeyId": ")" + id + R"(", "Policy": ")" + std::string(40000, 'x') + R"("})",
       "MalformedPolicyDocumentException"},
      {"PutKeyPolicy",
       R"({"KeyId": ")" + id +
           R"(", "Policy": "{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": {\"AWS\": \"arn:aws:iam::1:root\"}, \"Action\": \"kms:*\", \"Resource\": \"*\"}}"})",
       "MalformedPolicyDocumentException"},
      {"CreateKey", R"({"KeySpec": "RSA_2048"})", "UnsupportedOperationException"},
      {"ReEncrypt", "{}", "UnknownOperationException"},
  };
  const size_t keys_before = service_->store().List().size();
  for (const auto& c : cases) {
    const ServiceReply r = service_->Handle(c.op, c.body, kOwner);
    EXPECT_EQ(r.status, 400) << c.op << " " << c.body.substr(0, 80);
    const json j = json::parse(r.body);
    EXPECT_EQ(j["__type"], c.type) << c.op << " " << c.body.substr(0, 80) << " -> " << r.body;
    EXPECT_TRUE(j["message"].is_string());
  }
  EXPECT_EQ(service_->store().List().size(), keys_before);
  EXPECT_EQ(Call(*service_, "GetKeyPolicy", {{"KeyId", id}}, kOwner)["Policy"], before);
}

}  // namespace
}  // namespace modelseal::kms
