#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/ossl.h"
#include "kms/recipient.h"

namespace modelseal::kms {
namespace {

PkeyPtr NewRsa(int bits) {
  return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
}

Bytes SpkiDer(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(Recipient, RoundTripIsBerWithIndefiniteLengths) {
  PkeyPtr key = NewRsa(2048);
  ASSERT_TRUE(key);
  const Bytes data_key(32, 0x5c);
  auto env = EnvelopeForRecipient(SpkiDer(key.get()), data_key);
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  ASSERT_GE(env->size(), 2u);
  EXPECT_EQ((*env)[0], 0x30);
  EXPECT_EQ((*env)[1], 0x80) << "outer SEQUENCE must use the indefinite-length form";
  auto opened = OpenEnvelope(*env, key.get());
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  EXPECT_EQ(Bytes(opened->data(), opened->data() + opened->size()), data_key);

  PkeyPtr other = NewRsa(2048);
  EXPECT_FALSE(OpenEnvelope(*env, other.get()).ok());
}

TEST(Recipient, OpenSslCliOpensItWithTheExpectedAlgorithms) {
  PkeyPtr key = NewRsa(2048);
  const auto dir = std::filesystem::temp_directory_path() / ("ms-cms-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    FILE* f = std::fopen((dir / "key.pem").c_str(), "w");
    PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }
  Bytes data_key(32);
  for (size_t i = 0; i < data_key.size(); ++i) data_key[i] = static_cast<uint8_t>(i * 3);
  auto env = EnvelopeForRecipient(SpkiDer(key.get()), data_key);
  ASSERT_TRUE(env.ok());
  std::ofstream(dir / "env.der", std::ios::binary)
      .write(reinterpret_cast<const char*>(env->data()), static_cast<std::streamsize>(env->size()));
  const std::string plain =
      RunCommand("openssl cms -decrypt -inform DER -in " + (dir / "env.der").string() + " -inkey " +
                 (dir / "key.pem").string() + " -binary 2>&1");
  EXPECT_EQ(Bytes(plain.begin(), plain.end()), data_key) << plain;
  const std::string dump =
      RunCommand("openssl cms -cmsout -print -inform DER -in " + (dir / "env.der").string());
  EXPECT_NE(dump.find("aes-256-cbc"), std::string::npos) << dump;
  EXPECT_NE(dump.find("rsaesOaep"), std::string::npos) << dump;
  EXPECT_NE(dump.find("sha256"), std::string::npos) << dump;
  EXPECT_NE(dump.find("subjectKeyIdentifier"), std::string::npos) << dump;
  std::filesystem::remove_all(dir);
}

// The architecture promises envelopes in DER as well as KMS's BER: one made by the
// OpenSSL command line (definite lengths throughout) opens with the recipient's key.
TEST(Recipient, AnOpenSslMadeDerEnvelopeOpens) {
  PkeyPtr key = NewRsa(2048);
  const auto dir =
      std::filesystem::temp_directory_path() / ("ms-cms-der-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    FILE* f = std::fopen((dir / "key.pem").c_str(), "w");
    PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }
  Bytes data_key(32);
  for (size_t i = 0; i < data_key.size(); ++i) data_key[i] = static_cast<uint8_t>(200 - i);
  std::ofstream(dir / "plain.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(data_key.data()),
             static_cast<std::streamsize>(data_key.size()));
  const std::string d = dir.string();
  const std::string out = RunCommand(
      "openssl req -new -x509 -key " + d + "/key.pem -subj /CN=recipient -days 1 -out " + d +
      "/cert.pem 2>&1 && openssl cms -encrypt -binary -outform DER -aes-256-cbc -keyid -in " + d +
      "/plain.bin -out " + d + "/env.der -recip " + d +
      "/cert.pem -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt "
      "rsa_mgf1_md:sha256 2>&1");
  std::ifstream in(dir / "env.der", std::ios::binary);
  const Bytes der((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(der.size(), 4u) << out;
  EXPECT_EQ(der[0], 0x30);
  EXPECT_EQ(der[1], 0x82) << "OpenSSL's DER: a definite two-byte length, not BER's 0x80";
  auto opened = OpenEnvelope(der, key.get());
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  EXPECT_EQ(Bytes(opened->data(), opened->data() + opened->size()), data_key);
  PkeyPtr other = NewRsa(2048);
  EXPECT_FALSE(OpenEnvelope(der, other.get()).ok());
  std::filesystem::remove_all(dir);
}

TEST(Recipient, RejectsBadKeys) {
  const Bytes junk = {1, 2, 3};
  auto r = EnvelopeForRecipient(junk, Bytes(32));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "bad-recipient-key");
  PkeyPtr small = NewRsa(1024);
  auto s = EnvelopeForRecipient(SpkiDer(small.get()), Bytes(32));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("2048 to 4096"), std::string::npos);
  PkeyPtr ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  EXPECT_FALSE(EnvelopeForRecipient(SpkiDer(ec.get()), Bytes(32)).ok());
}

}  // namespace
}  // namespace modelseal::kms
