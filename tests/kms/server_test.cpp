// The key service over HTTP with SigV4, driven by modelseal's own KMS client.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "attest/attest.h"
#include "aws/sigv4.h"
#include "kms/client.h"
#include "kms/server.h"

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

  std::unique_ptr<KmsClient> Client(const std::string& akid, const std::string& secret) {
    ClientConfig cfg;
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
  auto plain = client->Decrypt(dk->ciphertext, {{"model", "tiny"}});
  ASSERT_TRUE(plain.ok()) << plain.error().ToString();
  EXPECT_EQ(Bytes(plain->data(), plain->data() + 32),
            Bytes(dk->plaintext.data(), dk->plaintext.data() + 32));

  auto attest = [&](std::span<const uint8_t> spki) {
    attest::DocumentRequest req;
    req.public_key = Bytes(spki.begin(), spki.end());
    return dev_->Issue({{4, Bytes(48, 1)}, {15, Bytes(48, 2)}}, req);
  };
  auto released = client->DecryptForRecipient(dk->ciphertext, {{"model", "tiny"}}, attest);
  ASSERT_TRUE(released.ok()) << released.error().ToString();
  EXPECT_EQ(Bytes(released->data(), released->data() + 32),
            Bytes(dk->plaintext.data(), dk->plaintext.data() + 32));

  auto wrong_ctx = client->Decrypt(dk->ciphertext, {{"model", "other"}});
  ASSERT_FALSE(wrong_ctx.ok());
  EXPECT_EQ(wrong_ctx.error().reason, "InvalidCiphertextException");
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

TEST(VerifySigV4, TamperAndClockSkew) {
  const std::vector<ServiceCredential> creds = {{"AKID", "secret", "arn:aws:iam::1:user/a"}};
  const auto now = std::chrono::system_clock::now();
  auto sign = [&](std::chrono::system_clock::time_point t, const std::string& body) {
    aws::SignableRequest sr;
    sr.method = "POST";
    sr.path = "/";
    sr.headers = {{"host", "127.0.0.1:1"}, {"x-amz-target", "TrentService.ListKeys"}};
    aws::SigningParams p;
    p.region = "eu-west-1";
    p.service = "kms";
    p.time = t;
    p.add_content_sha256 = false;
    aws::SignHeaders(
        sr, *aws::Credentials::Make("AKID", "secret"), p,
        aws::Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())));
    return InboundRequest{"POST", "/", "", sr.headers, body};
  };
  EXPECT_EQ(*VerifySigV4(sign(now, "{}"), creds, now), "arn:aws:iam::1:user/a");
  InboundRequest tampered = sign(now, "{}");
  tampered.body = "{\"Limit\": 1}";
  EXPECT_EQ(VerifySigV4(tampered, creds, now).error().reason, "InvalidSignatureException");
  InboundRequest header = sign(now, "{}");
  for (auto& [k, v] : header.headers) {
    if (k == "x-amz-target") v = "TrentService.Decrypt";
  }
  EXPECT_EQ(VerifySigV4(header, creds, now).error().reason, "InvalidSignatureException");
  auto old = VerifySigV4(sign(now - std::chrono::minutes(20), "{}"), creds, now);
  EXPECT_EQ(old.error().reason, "InvalidSignatureException");
  EXPECT_NE(old.error().message.find("Signature expired"), std::string::npos);
  InboundRequest none{"POST", "/", "", {{"host", "x"}}, "{}"};
  EXPECT_EQ(VerifySigV4(none, creds, now).error().reason, "MissingAuthenticationTokenException");
}

}  // namespace
}  // namespace modelseal::kms
