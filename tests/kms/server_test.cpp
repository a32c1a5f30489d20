// The key service over HTTP with SigV4, driven by modelseal's own KMS client.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "attest/attest.h"
#include "aws/sigv4.h"
#include "kms/client.h"
#include "kms/server.h"
#include "kms/sigv4_verify.h"

namespace modelseal::kms {
namespace {

using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ms-kmsrv-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    auto dev = attest::DevAuthority::Open((dir_ / "state").string());
    ASSERT_TRUE(dev.ok());
    dev_ = std::move(*dev);
    auto store = KeyStore::Open((dir_ / "keys").string(), "eu-west-1", "111122223333");
    ASSERT_TRUE(store.ok());
    ServiceConfig cfg;
    cfg.extra_roots.push_back(dev_->root());
    service_ = std::make_unique<KeyService>(std::move(*store), cfg);
    ServerConfig sc;
    sc.credentials = {{"AKIDOWNER", "owner-secret", "arn:aws:iam::111122223333:user/owner"}};
    sc.max_body = 64 * 1024;
    auto server = KeyServer::Start(*service_, sc);
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<KmsClient> Client(const std::string& akid, const std::string& secret,
                                    bool prepare_recipient_key = false) {
    ClientConfig cfg;
    cfg.prepare_recipient_key = prepare_recipient_key;
    cfg.endpoint = "http://127.0.0.1:" + std::to_string(server_->port());
    cfg.region = "eu-west-1";
    cfg.credentials = aws::StaticCredentials(aws::Credentials::Make(akid, secret));
    cfg.retry.max_attempts = 1;
    auto c = KmsClient::Create(cfg);
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  }

  std::filesystem::path dir_;
  std::unique_ptr<attest::DevAuthority> dev_;
  std::unique_ptr<KeyService> service_;
  std::unique_ptr<KeyServer> server_;
};

TEST_F(ServerTest, ClientRoundTripAndAttestedDecrypt) {
  auto client = Client("AKIDOWNER", "owner-secret");
  auto key = client->Call("CreateKey", {{"Description", "m"}});
  ASSERT_TRUE(key.ok()) << key.error().ToString();
  const std::string id = (*key)["KeyMetadata"]["KeyId"];
  auto dk = client->GenerateDataKey(id, {{"model", "tiny"}});
  ASSERT_TRUE(dk.ok()) << dk.error().ToString();
  ASSERT_EQ(dk->plaintext.size(), 32u);
  auto plain = client->Decrypt(dk->ciphertext, {{"model", "tiny"}}, dk->key_arn);
  ASSERT_TRUE(plain.ok()) << plain.error().ToString();
  EXPECT_EQ(Bytes(plain->data(), plain->data() + 32),
            Bytes(dk->plaintext.data(), dk->plaintext.data() + 32));

  auto attest = [&](std::span<const uint8_t> spki) {
    attest::DocumentRequest req;
    req.public_key = Bytes(spki.begin(), spki.end());
    return dev_->Issue({{4, Bytes(48, 1)}, {15, Bytes(48, 2)}}, req);
  };
  auto released =
      client->DecryptForRecipient(dk->ciphertext, {{"model", "tiny"}}, dk->key_arn, attest);
  ASSERT_TRUE(released.ok()) << released.error().ToString();
  EXPECT_EQ(Bytes(released->data(), released->data() + 32),
            Bytes(dk->plaintext.data(), dk->plaintext.data() + 32));

  auto wrong_ctx = client->Decrypt(dk->ciphertext, {{"model", "other"}}, dk->key_arn);
  ASSERT_FALSE(wrong_ctx.ok());
  EXPECT_EQ(wrong_ctx.error().reason, "InvalidCiphertextException");
}

// A client that makes its recipient keys ahead still uses each for one request only:
// every attested Decrypt, back to back, presents a public key of its own.
TEST_F(ServerTest, RecipientKeysMadeAheadAreNeverReused) {
  auto client = Client("AKIDOWNER", "owner-secret", /*prepare_recipient_key=*/true);
  auto key = client->Call("CreateKey", json::object());
  ASSERT_TRUE(key.ok()) << key.error().ToString();
  auto dk = client->GenerateDataKey((*key)["KeyMetadata"]["Arn"], {{"model", "tiny"}});
  ASSERT_TRUE(dk.ok()) << dk.error().ToString();
  std::set<Bytes> seen;
  for (int i = 0; i < 4; ++i) {
    auto attest = [&](std::span<const uint8_t> spki) {
      EXPECT_TRUE(seen.insert(Bytes(spki.begin(), spki.end())).second) << "key reused at " << i;
      attest::DocumentRequest req;
      req.public_key = Bytes(spki.begin(), spki.end());
      return dev_->Issue({{4, Bytes(48, 1)}}, req);
    };
    auto released =
        client->DecryptForRecipient(dk->ciphertext, {{"model", "tiny"}}, dk->key_arn, attest);
    ASSERT_TRUE(released.ok()) << released.error().ToString();
    EXPECT_EQ(Bytes(released->data(), released->data() + 32),
              Bytes(dk->plaintext.data(), dk->plaintext.data() + 32));
  }
  EXPECT_EQ(seen.size(), 4u);
}

TEST_F(ServerTest, SigV4FailuresAreRefused) {
  auto bad_secret = Client("AKIDOWNER", "not-the-secret")->Call("ListKeys", json::object());
  ASSERT_FALSE(bad_secret.ok());
  EXPECT_EQ(bad_secret.error().reason, "InvalidSignatureException");
  auto unknown = Client("AKIDNOBODY", "x")->Call("ListKeys", json::object());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().reason, "UnrecognizedClientException");
  auto big = Client("AKIDOWNER", "owner-secret")
                 ->Call("CreateKey", {{"Description", std::string(100000, 'x')}});
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message.find("413"), std::string::npos) << big.error().message;
  EXPECT_TRUE(service_->store().List().empty());
}

TEST_F(ServerTest, ClientPinsTheKeyItExpects) {
  auto client = Client("AKIDOWNER", "owner-secret");
  auto a = client->Call("CreateKey", json::object());
  auto b = client->Call("CreateKey", json::object());
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string arn_a = (*a)["KeyMetadata"]["Arn"], arn_b = (*b)["KeyMetadata"]["Arn"];
  auto dk = client->GenerateDataKey(arn_a, {});
  ASSERT_TRUE(dk.ok()) << dk.error().ToString();
  // The ciphertext is under key A; a consumer that expects key B is refused by the
  // service (IncorrectKeyException), as AWS does.
  auto wrong = client->Decrypt(dk->ciphertext, {}, arn_b);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().reason, "IncorrectKeyException");
  // By key id it works too; an alias is refused locally (it can be repointed).
  auto by_id = client->Decrypt(dk->ciphertext, {}, std::string((*a)["KeyMetadata"]["KeyId"]));
  EXPECT_TRUE(by_id.ok()) << by_id.error().ToString();
  ASSERT_TRUE(client->Call("CreateAlias", {{"AliasName", "alias/m"}, {"TargetKeyId", arn_a}}).ok());
  auto by_alias = client->Decrypt(dk->ciphertext, {}, "alias/m");
  ASSERT_FALSE(by_alias.ok());
  EXPECT_EQ(by_alias.error().reason, "bad-expected-key");
}

// ---- the inbound SigV4 check

const std::vector<ServiceCredential> kCreds = {{"AKID", "secret", "arn:aws:iam::1:user/a"}};

// A request signed the way the AWS SDK for JavaScript v3 signs KMS requests:
// host, content-type, x-amz-target, x-amz-date and x-amz-content-sha256 signed.
InboundRequest SignRequest(std::chrono::system_clock::time_point t, const std::string& body,
                           const std::string& target = "TrentService.ListKeys",
                           const std::string& region = "eu-west-1",
                           const std::string& service = "kms", bool content_sha = true,
                           bool sign_content_type = true) {
  aws::SignableRequest sr;
  sr.method = "POST";
  sr.path = "/";
  sr.headers = {{"host", "127.0.0.1:1"}, {"x-amz-target", target}};
  if (sign_content_type) sr.headers.emplace_back("content-type", "application/x-amz-json-1.1");
  aws::SigningParams p;
  p.region = region;
  p.service = service;
  p.time = t;
  p.add_content_sha256 = content_sha;
  aws::SignHeaders(
      sr, *aws::Credentials::Make("AKID", "secret"), p,
      aws::Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())));
  if (!sign_content_type) sr.headers.emplace_back("content-type", "application/x-amz-json-1.1");
  return InboundRequest{"POST", "/", "", sr.headers, body};
}

VerifierConfig Config() {
  VerifierConfig c;
  c.credentials = kCreds;
  c.region = "eu-west-1";
  return c;
}

std::string Reason(const Result<VerifiedRequest>& r) {
  return r.ok() ? "ok" : r.error().reason;
}

TEST(VerifyKmsRequest, GoodRequestNamesPrincipalAndSignedOperation) {
  const auto now = std::chrono::system_clock::now();
  auto v = VerifyKmsRequest(SignRequest(now, "{}"), Config(), now);
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(v->principal_arn, "arn:aws:iam::1:user/a");
  EXPECT_EQ(v->operation, "ListKeys");
  // Without x-amz-content-sha256 (as our own client signs) too.
  EXPECT_TRUE(
      VerifyKmsRequest(SignRequest(now, "{}", "TrentService.ListKeys", "eu-west-1", "kms", false),
                       Config(), now)
          .ok());
}

TEST(VerifyKmsRequest, TamperAndClockSkew) {
  const auto now = std::chrono::system_clock::now();
  InboundRequest tampered =
      SignRequest(now, "{}", "TrentService.ListKeys", "eu-west-1", "kms", false);
  tampered.body = "{\"Limit\": 1}";
  EXPECT_EQ(Reason(VerifyKmsRequest(tampered, Config(), now)), "InvalidSignatureException");
  InboundRequest header = SignRequest(now, "{}");
  for (auto& [k, v] : header.headers) {
    if (k == "x-amz-target") v = "TrentService.Decrypt";
  }
  EXPECT_EQ(Reason(VerifyKmsRequest(header, Config(), now)), "InvalidSignatureException");
  auto old = VerifyKmsRequest(SignRequest(now - std::chrono::minutes(20), "{}"), Config(), now);
  EXPECT_EQ(Reason(old), "InvalidSignatureException");
  EXPECT_NE(old.error().message.find("Signature expired"), std::string::npos);
  InboundRequest none{"POST", "/", "", {{"host", "x"}}, "{}"};
  EXPECT_EQ(Reason(VerifyKmsRequest(none, Config(), now)), "MissingAuthenticationTokenException");
}

// An X-Amz-Date in a year system_clock cannot hold (found by fuzzing) used to
// overflow its nanosecond count: it is malformed.
TEST(VerifyKmsRequest, DateBeyondTheClockRangeIsMalformed) {
  const auto now = std::chrono::system_clock::now();
  for (const std::string date : {"40520202T000000Z", "99991231T235959Z"}) {
    InboundRequest r = SignRequest(now, "{}");
    for (auto& [k, v] : r.headers) {
      if (k == "x-amz-date") v = date;
    }
    EXPECT_EQ(Reason(VerifyKmsRequest(r, Config(), now)), "IncompleteSignatureException") << date;
    auto pre = PrecheckRequestHead(r, Config(), now);
    ASSERT_FALSE(pre.ok());
    EXPECT_EQ(pre.error().reason, "IncompleteSignatureException");
  }
}

// A captured request whose x-amz-content-sha256 is signed must not carry another
// body: the body is always hashed and the header must equal that hash.
TEST(VerifyKmsRequest, SignedContentHashDoesNotAuthenticateAnotherBody) {
  const auto now = std::chrono::system_clock::now();
  InboundRequest captured = SignRequest(now, R"({"Description":"mine"})", "TrentService.CreateKey");
  captured.body = R"({"Description":"forged"})";
  EXPECT_EQ(Reason(VerifyKmsRequest(captured, Config(), now)), "InvalidSignatureException");
  // The legacy entry point the current HTTP front calls refuses it as well.
  RegisterServiceRegion("eu-west-1");
  auto legacy = VerifySigV4(captured, kCreds, now);
  ASSERT_FALSE(legacy.ok());
  EXPECT_EQ(legacy.error().reason, "InvalidSignatureException");
}

TEST(VerifyKmsRequest, RepeatedSecurityHeadersAreRefused) {
  const auto now = std::chrono::system_clock::now();
  for (const std::string name :
       {"X-Amz-Target", "x-amz-date", "Host", "Content-Type", "x-amz-content-sha256"}) {
    InboundRequest r = SignRequest(now, "{}", "TrentService.DescribeKey");
    // A second value in front of the signed one (what a proxy or a dispatcher that
    // reads the first value would act on).
    r.headers.insert(r.headers.begin(),
                     {name, name == "X-Amz-Target" ? "TrentService.ScheduleKeyDeletion" : "x"});
    EXPECT_EQ(Reason(VerifyKmsRequest(r, Config(), now)), "IncompleteSignatureException") << name;
    RegisterServiceRegion("eu-west-1");
    EXPECT_FALSE(VerifySigV4(r, kCreds, now).ok()) << name;
  }
}

TEST(VerifyKmsRequest, RequiredHeadersMustBeSigned) {
  const auto now = std::chrono::system_clock::now();
  auto r = VerifyKmsRequest(
      SignRequest(now, "{}", "TrentService.ListKeys", "eu-west-1", "kms", true, false), Config(),
      now);
  EXPECT_EQ(Reason(r), "IncompleteSignatureException");
  EXPECT_NE(r.error().message.find("content-type"), std::string::npos) << r.error().message;
}

TEST(VerifyKmsRequest, ScopeIsPinnedToServiceRegionAndDate) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(Reason(VerifyKmsRequest(SignRequest(now, "{}", "TrentService.ListKeys", "us-east-1"),
                                    Config(), now)),
            "InvalidSignatureException");
  EXPECT_EQ(Reason(VerifyKmsRequest(
                SignRequest(now, "{}", "TrentService.ListKeys", "eu-west-1", "s3"), Config(), now)),
            "InvalidSignatureException");
  // A credential scope whose date is not X-Amz-Date's date.
  InboundRequest r = SignRequest(now, "{}");
  for (auto& [k, v] : r.headers) {
    if (k == "authorization") {
      const size_t slash = v.find('/');
      v.replace(slash + 1, 8, "20000101");
    }
  }
  auto dated = VerifyKmsRequest(r, Config(), now);
  EXPECT_EQ(Reason(dated), "InvalidSignatureException");
  EXPECT_NE(dated.error().message.find("date"), std::string::npos) << dated.error().message;
}

TEST(PrecheckRequestHead, ChecksTheHeadWithoutTheBody) {
  const auto now = std::chrono::system_clock::now();
  InboundRequest head = SignRequest(now, R"({"Limit": 5})");
  head.body.clear();  // not read yet
  EXPECT_TRUE(PrecheckRequestHead(head, Config(), now).ok());
  VerifierConfig stranger = Config();
  stranger.credentials = {{"OTHER", "x", "arn:aws:iam::1:user/b"}};
  EXPECT_EQ(PrecheckRequestHead(head, stranger, now).error().reason, "UnrecognizedClientException");
  EXPECT_EQ(PrecheckRequestHead(head, Config(), now + std::chrono::minutes(16)).error().reason,
            "InvalidSignatureException");
  InboundRequest twice = head;
  twice.headers.emplace_back("authorization", "AWS4-HMAC-SHA256 x");
  EXPECT_EQ(PrecheckRequestHead(twice, Config(), now).error().reason,
            "IncompleteSignatureException");
}

}  // namespace
}  // namespace modelseal::kms
