// The key service's authorisation model, evaluation order, validation and audit,
// below HTTP. Expected outcomes are AWS's documented behaviour (cited in
// docs/kms.md), written out by hand.
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attest/attest.h"
#include "common/ossl.h"
#include "kms/service.h"

namespace modelseal::kms {
namespace {

using nlohmann::json;

const std::string kAdmin = "arn:aws:iam::111122223333:user/owner";
const std::string kConsumer = "arn:aws:iam::111122223333:role/consumer";
const std::string kOutsider = "arn:aws:iam::444455556666:role/consumer";

class AuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ms-authz-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto dev = attest::DevAuthority::Open((dir_ / "state").string());
    ASSERT_TRUE(dev.ok()) << dev.error().ToString();
    dev_ = std::move(*dev);
    service_ = MakeService((dir_ / "audit.log").string());
    rsa_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(rsa_.get(), &der);
    spki_.assign(der, der + len);
    OPENSSL_free(der);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<KeyService> MakeService(const std::string& audit) {
    auto store = KeyStore::Open((dir_ / "keys").string(), "eu-west-1", "111122223333");
    EXPECT_TRUE(store.ok());
    ServiceConfig cfg;
    cfg.extra_roots.push_back(dev_->root());
    cfg.audit_log_path = audit;
    cfg.identities[kAdmin] = {std::string("admin"), std::nullopt};
    cfg.identities[kConsumer] = {std::string("consumer"), std::nullopt};
    return std::make_unique<KeyService>(std::move(*store), cfg);
  }

  json Call(const std::string& op, const json& body, const std::string& who, int want = 200) {
    const ServiceReply r = service_->Handle(op, body.dump(), who);
    EXPECT_EQ(r.status, want) << op << ": " << r.body;
    return json::parse(r.body);
  }
  std::string Type(const std::string& op, const std::string& body, const std::string& who) {
    const ServiceReply r = service_->Handle(op, body, who);
    const json j = json::parse(r.body);  // every reply has a JSON body
    return r.status == 200 ? "ok" : j.value("__type", "?");
  }

  std::string NewKey(const json& policy = nullptr) {
    json req = json::object();
    if (!policy.is_null()) req["Policy"] = policy.dump();
    return Call("CreateKey", req, kAdmin)["KeyMetadata"]["Arn"];
  }

  json Recipient(std::map<uint32_t, Bytes> pcrs) {
    attest::DocumentRequest req;
    req.public_key = spki_;
    auto doc = dev_->Issue(pcrs, req);
    EXPECT_TRUE(doc.ok());
    return {{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"},
            {"AttestationDocument", Base64Encode(*doc)}};
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

// CreateKey, ListKeys, ListAliases and alias resources are decided by the
// caller's identity policy; a consumer cannot create an alias (so it cannot
// capture alias/<model> with a key it controls) nor create keys.
TEST_F(AuthzTest, IamSideOperationsNeedTheIdentity) {
  const std::string arn = NewKey();
  EXPECT_EQ(Type("CreateKey", "{}", kConsumer), "AccessDeniedException");
  EXPECT_EQ(Type("CreateKey", "{}", kOutsider), "AccessDeniedException");
  EXPECT_EQ(Type("ListKeys", "{}", kOutsider), "AccessDeniedException");
  EXPECT_EQ(Type("ListKeys", "{}", kConsumer), "ok");
  // A key whose policy lets the consumer do anything with it (it "controls" it).
  json policy = {{"Statement",
                  {{{"Effect", "Allow"},
                    {"Principal", {{"AWS", "arn:aws:iam::111122223333:root"}}},
                    {"Action", "kms:*"},
                    {"Resource", "*"}},
                   {{"Effect", "Allow"},
                    {"Principal", {{"AWS", kConsumer}}},
                    {"Action", "kms:*"},
                    {"Resource", "*"}}}}};
  const std::string consumers = NewKey(policy);
  const std::string create = json{{"AliasName", "alias/model"}, {"TargetKeyId", consumers}}.dump();
  EXPECT_EQ(Type("CreateAlias", create, kConsumer), "AccessDeniedException");
  EXPECT_TRUE(service_->store().Aliases().empty());
  // The admin may; repointing and deleting need the alias permission too.
  Call("CreateAlias", {{"AliasName", "alias/model"}, {"TargetKeyId", arn}}, kAdmin);
  const std::string update = json{{"AliasName", "alias/model"}, {"TargetKeyId", consumers}}.dump();
  EXPECT_EQ(Type("UpdateAlias", update, kConsumer), "AccessDeniedException");
  EXPECT_EQ(Type("DeleteAlias", json{{"AliasName", "alias/model"}}.dump(), kConsumer),
            "AccessDeniedException");
  EXPECT_EQ(service_->store().Aliases().at("alias/model"), arn.substr(arn.rfind('/') + 1));
  Call("UpdateAlias", {{"AliasName", "alias/model"}, {"TargetKeyId", consumers}}, kAdmin);
  EXPECT_NE(service_->store().Aliases().at("alias/model"), arn.substr(arn.rfind('/') + 1));
  Call("DeleteAlias", {{"AliasName", "alias/model"}}, kAdmin);
  EXPECT_TRUE(service_->store().Aliases().empty());
  // The audit log names the deciding identity statement.
  bool saw = false;
  for (const auto& l : AuditLines()) {
    if (l["operation"] == "DeleteAlias" && l["decision"] == "allow") {
      saw = true;
      EXPECT_NE(l["statement"].get<std::string>().find("identity 1 Admin"), std::string::npos);
    }
  }
  EXPECT_TRUE(saw);
}

// A key policy statement naming the account delegates to the identity policy;
// one naming the caller grants directly.
TEST_F(AuthzTest, AccountPrincipalDelegatesToIdentityPolicy) {
  const std::string arn = NewKey();  // default policy: account root, kms:*
  // The consumer role allows Decrypt and DescribeKey, not PutKeyPolicy.
  EXPECT_EQ(Type("DescribeKey", json{{"KeyId", arn}}.dump(), kConsumer), "ok");
  EXPECT_EQ(Type("GetKeyPolicy", json{{"KeyId", arn}}.dump(), kConsumer), "AccessDeniedException");
  EXPECT_EQ(Type("ScheduleKeyDeletion", json{{"KeyId", arn}}.dump(), kConsumer),
            "AccessDeniedException");
  // A principal of another account matches no statement of the default policy.
  EXPECT_EQ(Type("DescribeKey", json{{"KeyId", arn}}.dump(), kOutsider), "AccessDeniedException");
}

TEST_F(AuthzTest, DeletionCanBeCancelledAndKeysDisabled) {
  const std::string arn = NewKey();
  Call("ScheduleKeyDeletion", {{"KeyId", arn}, {"PendingWindowInDays", 7}}, kAdmin);
  json c = Call("CancelKeyDeletion", {{"KeyId", arn}}, kAdmin);
  EXPECT_EQ(c["KeyId"], arn);
  // AWS leaves a cancelled key Disabled.
  EXPECT_EQ(Call("DescribeKey", {{"KeyId", arn}}, kAdmin)["KeyMetadata"]["KeyState"], "Disabled");
  const std::string enc = json{{"KeyId", arn}, {"Plaintext", "AQID"}}.dump();
  EXPECT_EQ(Type("Encrypt", enc, kAdmin), "DisabledException");
  Call("EnableKey", {{"KeyId", arn}}, kAdmin);
  EXPECT_EQ(Type("Encrypt", enc, kAdmin), "ok");
  EXPECT_EQ(Type("CancelKeyDeletion", json{{"KeyId", arn}}.dump(), kAdmin),
            "KMSInvalidStateException");
}

// A development document is told apart by modelseal:AttestationRoot.
TEST_F(AuthzTest, PolicyCanRefuseDevelopmentDocuments) {
  json policy = {
      {"Statement",
       {{{"Effect", "Allow"},
         {"Principal", {{"AWS", "arn:aws:iam::111122223333:root"}}},
         {"Action", "kms:*"},
         {"Resource", "*"}},
        {{"Sid", "NoDevelopment"},
         {"Effect", "Deny"},
         {"Principal", "*"},
         {"Action", "kms:Decrypt"},
         {"Resource", "*"},
         {"Condition", {{"StringEquals", {{"MODELSEAL:attestationroot", "development"}}}}}}}}};
  const std::string arn = NewKey(policy);
  json enc = Call("Encrypt", {{"KeyId", arn}, {"Plaintext", "AQID"}}, kAdmin);
  json dec = {{"CiphertextBlob", enc["CiphertextBlob"]},
              {"Recipient", Recipient({{4, Bytes(48, 1)}})}};
  // Without a Recipient the statement does not apply (the key is absent).
  Call("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}}, kAdmin);
  json r = Call("Decrypt", dec, kAdmin, 400);
  EXPECT_EQ(r["__type"], "AccessDeniedException");
  EXPECT_NE(r["message"].get<std::string>().find("NoDevelopment"), std::string::npos) << r;
}

// kms:EncryptionContextKeys is multivalued: ForAnyValue / ForAllValues / a plain
// operator all look at every key of the context.
TEST_F(AuthzTest, EncryptionContextKeysIsASet) {
  json policy = {
      {"Statement",
       {{{"Effect", "Allow"},
         {"Principal", {{"AWS", "arn:aws:iam::111122223333:root"}}},
         {"Action", "kms:*"},
         {"Resource", "*"}},
        {{"Sid", "NoSecret"},
         {"Effect", "Deny"},
         {"Principal", "*"},
         {"Action", "kms:Decrypt"},
         {"Resource", "*"},
         {"Condition", {{"ForAnyValue:StringEquals", {{"kms:EncryptionContextKeys", "secret"}}}}}},
        {{"Sid", "PlainOperator"},
         {"Effect", "Deny"},
         {"Principal", "*"},
         {"Action", "kms:Decrypt"},
         {"Resource", "*"},
         {"Condition", {{"StringEquals", {{"kms:EncryptionContextKeys", "hidden"}}}}}}}}};
  const std::string arn = NewKey(policy);
  auto decrypt = [&](const json& ctx) {
    json enc = Call("Encrypt", {{"KeyId", arn}, {"Plaintext", "AQID"}, {"EncryptionContext", ctx}},
                    kAdmin);
    return Type("Decrypt",
                json{{"CiphertextBlob", enc["CiphertextBlob"]}, {"EncryptionContext", ctx}}.dump(),
                kAdmin);
  };
  EXPECT_EQ(decrypt({{"a", "1"}}), "ok");
  EXPECT_EQ(decrypt({{"secret", "1"}}), "AccessDeniedException");
  EXPECT_EQ(decrypt({{"a", "1"}, {"secret", "1"}, {"z", "2"}}), "AccessDeniedException");
  // Without a set operator: any value that matches, not just the first key.
  EXPECT_EQ(decrypt({{"a", "1"}, {"hidden", "1"}}), "AccessDeniedException");
}

// Condition key names are case-insensitive: context keys that differ only in case
// are one condition key with several values, and a Deny on either applies.
TEST_F(AuthzTest, ContextKeysDifferingInCase) {
  json policy = {
      {"Statement",
       {{{"Effect", "Allow"},
         {"Principal", {{"AWS", "arn:aws:iam::111122223333:root"}}},
         {"Action", "kms:*"},
         {"Resource", "*"}},
        {{"Effect", "Deny"},
         {"Principal", "*"},
         {"Action", "kms:Decrypt"},
         {"Resource", "*"},
         {"Condition", {{"StringEquals", {{"kms:EncryptionContext:tier", "secret"}}}}}}}}};
  const std::string arn = NewKey(policy);
  const json ctx = {{"Tier", "public"}, {"tier", "secret"}};
  json enc =
      Call("Encrypt", {{"KeyId", arn}, {"Plaintext", "AQID"}, {"EncryptionContext", ctx}}, kAdmin);
  EXPECT_EQ(Type("Decrypt",
                 json{{"CiphertextBlob", enc["CiphertextBlob"]}, {"EncryptionContext", ctx}}.dump(),
                 kAdmin),
            "AccessDeniedException");
}

// A wrong encryption context gets the same answer whether or not the policy would
// allow the request: the policy cannot be probed with arbitrary contexts.
TEST_F(AuthzTest, WrongContextDoesNotRevealThePolicy) {
  json policy = {{"Statement",
                  {{{"Effect", "Allow"},
                    {"Principal", {{"AWS", "arn:aws:iam::111122223333:root"}}},
                    {"Action", "kms:*"},
                    {"Resource", "*"}},
                   {{"Effect", "Deny"},
                    {"Principal", "*"},
                    {"Action", "kms:Decrypt"},
                    {"Resource", "*"},
                    {"Condition", {{"StringEquals", {{"kms:EncryptionContext:m", "denied"}}}}}}}}};
  const std::string arn = NewKey(policy);
  json enc =
      Call("Encrypt",
           {{"KeyId", arn}, {"Plaintext", "AQID"}, {"EncryptionContext", {{"m", "real"}}}}, kAdmin);
  auto with = [&](const std::string& m) {
    const ServiceReply r = service_->Handle(
        "Decrypt",
        json{{"CiphertextBlob", enc["CiphertextBlob"]}, {"EncryptionContext", {{"m", m}}}}.dump(),
        kAdmin);
    return json::parse(r.body);
  };
  const json denied = with("denied"), allowed = with("other");
  EXPECT_EQ(denied["__type"], "InvalidCiphertextException");
  EXPECT_EQ(denied, allowed);
  EXPECT_TRUE(with("real").contains("Plaintext"));
}

TEST_F(AuthzTest, DryRunChecksPermissionAndStops) {
  const std::string arn = NewKey();
  const ServiceReply r = service_->Handle(
      "GenerateDataKey", json{{"KeyId", arn}, {"KeySpec", "AES_256"}, {"DryRun", true}}.dump(),
      kAdmin);
  EXPECT_EQ(r.status, 412);
  const json j = json::parse(r.body);
  EXPECT_EQ(j["__type"], "DryRunOperationException");
  EXPECT_FALSE(j.contains("Plaintext"));
  EXPECT_EQ(Type("Encrypt", json{{"KeyId", arn}, {"Plaintext", "AQID"}, {"DryRun", true}}.dump(),
                 kOutsider),
            "AccessDeniedException");
  EXPECT_EQ(AuditLines().back()["decision"], "deny");
}

// Malformed input: an AWS exception with a body, HTTP 400, an audit line, nothing
// changed (API reference pages of each operation).
TEST_F(AuthzTest, ValidationMatchesAws) {
  const std::string arn = NewKey();
  json enc = Call("Encrypt", {{"KeyId", arn}, {"Plaintext", "AQID"}}, kAdmin);
  Bytes blob = *Base64Decode(enc["CiphertextBlob"].get<std::string>());
  blob[6] = 0xff;  // the key id inside is no longer UTF-8
  blob[7] = 0xfe;
  const std::string huge(1 << 20, 'k');
  struct Case {
    std::string op, body, type;
  };
  const std::vector<Case> cases = {
      {"Decrypt", json{{"CiphertextBlob", Base64Encode(blob)}}.dump(),
       "InvalidCiphertextException"},
      {"PutKeyPolicy",
       json{{"KeyId", arn},
            {"Policy", KeyService::DefaultPolicy("111122223333")},
            {"BypassPolicyLockoutSafetyCheck", "yes"}}
           .dump(),
       "SerializationException"},
      {"CreateKey", R"({"Origin": "EXTERNAL"})", "UnsupportedOperationException"},
      {"CreateKey", R"({"Origin": "SOMEWHERE"})", "ValidationException"},
      {"CreateKey", R"({"MultiRegion": true})", "UnsupportedOperationException"},
      {"CreateKey", R"({"MultiRegion": "yes"})", "SerializationException"},
      {"CreateKey", R"({"Tags": [{"TagKey": "a", "TagValue": "b"}]})",
       "UnsupportedOperationException"},
      {"CreateKey", R"({"BypassPolicyLockoutSafetyCheck": 1})", "SerializationException"},
      {"Encrypt",
       json{{"KeyId", arn}, {"Plaintext", "AQID"}, {"EncryptionAlgorithm", "ROT13"}}.dump(),
       "ValidationException"},
      {"Encrypt",
       json{{"KeyId", arn}, {"Plaintext", "AQID"}, {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}}
           .dump(),
       "InvalidKeyUsageException"},
      {"Encrypt", json{{"KeyId", arn}, {"Plaintext", "AQID"}, {"DryRun", "no"}}.dump(),
       "SerializationException"},
      {"CreateAlias", json{{"AliasName", "alias/has space"}, {"TargetKeyId", arn}}.dump(),
       "InvalidAliasNameException"},
      {"CreateAlias", json{{"AliasName", "alias/aws/x"}, {"TargetKeyId", arn}}.dump(),
       "InvalidAliasNameException"},
      {"CreateAlias", json{{"AliasName", "alias/é"}, {"TargetKeyId", arn}}.dump(),
       "InvalidAliasNameException"},
      {"DescribeKey", json{{"KeyId", huge}}.dump(), "ValidationException"},
      {"Decrypt", json{{"CiphertextBlob", enc["CiphertextBlob"]}, {"KeyId", huge}}.dump(),
       "ValidationException"},
  };
  const size_t keys_before = service_->store().List().size();
  const size_t lines_before = AuditLines().size();
  for (const auto& c : cases) {
    const ServiceReply r = service_->Handle(c.op, c.body, kAdmin);
    EXPECT_EQ(r.status, 400) << c.op << " " << c.body.substr(0, 100) << " -> " << r.body;
    ASSERT_FALSE(r.body.empty()) << c.op;
    const json j = json::parse(r.body);
    EXPECT_EQ(j["__type"], c.type) << c.op << " " << c.body.substr(0, 100) << " -> " << r.body;
    // Nothing long is echoed back.
    EXPECT_LT(r.body.size(), 2000u) << c.op;
  }
  EXPECT_EQ(AuditLines().size(), lines_before + cases.size());
  EXPECT_EQ(service_->store().List().size(), keys_before);
  EXPECT_TRUE(service_->store().Aliases().empty());
}

TEST_F(AuthzTest, NoAuditLogNoService) {
  const std::string blocked = (dir_ / "no-such-dir" / "audit.log").string();
  auto store = KeyStore::Open((dir_ / "keys2").string(), "eu-west-1", "111122223333");
  ASSERT_TRUE(store.ok());
  ServiceConfig cfg;
  cfg.audit_log_path = blocked;
  auto opened = KeyService::Open(std::move(*store), cfg);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().reason, "audit-log");
  // A service whose audit log cannot be opened refuses everything.
  auto svc = MakeService(blocked);
  const ServiceReply r = svc->Handle("ListKeys", "{}", kAdmin);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(json::parse(r.body)["__type"], "KMSInternalException");
}

// A log that opens but cannot be written (a full disk): no key material leaves.
TEST_F(AuthzTest, UnwritableAuditLogReleasesNothing) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const std::string arn = NewKey();
  json enc = Call("Encrypt", {{"KeyId", arn}, {"Plaintext", "AQID"}}, kAdmin);
  service_ = MakeService("/dev/full");
  const ServiceReply r =
      service_->Handle("Decrypt", json{{"CiphertextBlob", enc["CiphertextBlob"]}}.dump(), kAdmin);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("Plaintext"), std::string::npos);
  EXPECT_EQ(r.body.find("AQID"), std::string::npos);
}

}  // namespace
}  // namespace modelseal::kms
