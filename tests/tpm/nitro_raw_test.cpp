// The hand-built NitroTPM commands and the salted-session arithmetic, against
// values from outside modelseal: layouts written by hand from TPM 2.0 Part 3 and
// nitro-tpm-attest's raw/ sources, digests and HMACs computed with Python's hashlib
// and hmac (the snippet is below), the salt decrypted by the openssl command.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/ossl.h"
#include "tests/tpm/layout.h"
#include "tests/tpm/swtpm_env.h"
#include "tpm/nitro_raw.h"

namespace modelseal::tpm::nitro {
namespace {

// python3 -c '
// import hmac, hashlib, struct
// salt = bytes(range(32))
// nonce_tpm = bytes([0xA0 + (i % 16) for i in range(64)])
// nonce_caller = bytes([(7*i) & 0xff for i in range(64)])
// info = struct.pack(">I",1) + b"ATH\x00" + nonce_tpm + nonce_caller + struct.pack(">I",512)
// key = hmac.new(salt, info, hashlib.sha512).digest()
// name = bytes.fromhex("000d") + hashlib.sha512(b"nv-public").digest()
// cp = hashlib.sha512(struct.pack(">I",0x20000001) + name + name).digest()
// auth = bytes([0x11]*63 + [0x01]); nonce2 = bytes([0x5c]*64)
// h = hmac.new(key + auth, cp + nonce2 + nonce_tpm + b"\x01", hashlib.sha512).digest()
// print(key.hex(), name.hex(), cp.hex(), h.hex())'
constexpr char kSessionKey[] =
    "2f10ae53ecbc52f2cb6385f7dad8e4bf7d96e7752b4f3146980478cfe4dbfe55"
    "88e66ac94b52e268c3a4fbe56788cc9213a29c35306149d2a1e36d20a0e9da2c";
constexpr char kName[] =
    "000d2badf9aaa9a4552661b14adde2abde8190b94bfc6af9acc96ff3fd55867dec8b220ede8b7ad41f2a96"
    "4360ff9b14a8753c245776db30bc89e46aaf4a702c0e50";
constexpr char kCpHash[] =
    "e00ea22add0e2d7a38cce609c30b24ce6369b2b25c84114f4ad73843c8984d0a"
    "f4a8f8b64ba71b78846064d0a300a58f94eec66bccd229081564df6b528068f9";
constexpr char kHmac[] =
    "82a74ddb7e0c73dee2ad8840e5f420505c62a3c771ce0ee1f1e282294fea53de"
    "5ecef9e729bd52415a1fd4d3592dc3c752feeede6dc72ff03ab3eb02895d9f27";

Bytes Salt() {
  Bytes b(32);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
  return b;
}
Bytes NonceTpm() {
  Bytes b(64);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(0xa0 + i % 16);
  return b;
}
Bytes NonceCaller() {
  Bytes b(64);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(7 * i);
  return b;
}
Bytes Auth() {
  Bytes b(64, 0x11);
  b.back() = 0x01;
  return b;
}
std::string Rep(const char* hex_byte, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += hex_byte;
  return s;
}

TEST(NitroRaw, SessionKeyIsKdfaSha512OverTheSaltAndBothNonces) {
  const SecretBuffer key = SessionKey(Salt(), NonceTpm(), NonceCaller());
  EXPECT_EQ(ToHex(key.span()), kSessionKey);
}

TEST(NitroRaw, CpHashIsOverTheCommandCodeAndTheIndexNameTwice) {
  const Bytes name = *FromHex(kName);
  EXPECT_EQ(ToHex(CpHash(kVendorCommand, {name, name}, {})), kCpHash);
}

TEST(NitroRaw, VendorCommandLayoutAndHmac) {
  const Bytes name = *FromHex(kName);
  const SecretBuffer key = SessionKey(Salt(), NonceTpm(), NonceCaller());
  const Bytes nonce(64, 0x5c);
  const Bytes auth = AuthCommand(0x02000001, nonce, kContinueSession, key.span(), Auth(),
                                 CpHash(kVendorCommand, {name, name}, {}), NonceTpm());
  const uint32_t handles[] = {0x01000000, 0x01000000};
  const Bytes cmd = MarshalSessionCommand(kVendorCommand, handles, auth, {});
  // Part 3 layout with nitro-tpm-attest's parameters (raw/tpm/mod.rs nsm_request,
  // raw/auth_session.rs auth_area): tag TPM_ST_SESSIONS, size 159, the vendor code,
  // the index twice, authorizationSize 137, session handle, nonceCaller (64),
  // continueSession, HMAC (64), no parameters.
  const std::string expected = "8002 0000009f 20000001 01000000 01000000 00000089 02000001 0040 " +
                               Rep("5c", 64) + " 01 0040 " + kHmac;
  std::map<std::string, uint32_t> vars;
  EXPECT_EQ(testing::MatchLayout(cmd, expected, vars), "");
}

TEST(NitroRaw, StartAuthSessionAndFlushLayouts) {
  const Bytes nonce(64, 0xa5), salt(256, 0x5a);
  std::map<std::string, uint32_t> vars;
  // raw/tpm/mod.rs start_auth_session: TPM_ST_NO_SESSIONS, size 347,
  // TPM_CC_StartAuthSession, tpmKey, bind TPM_RH_NULL, nonceCaller, encryptedSalt,
  // TPM_SE_HMAC, symmetric TPM_ALG_NULL (no key bits or mode), TPM_ALG_SHA512.
  EXPECT_EQ(testing::MatchLayout(MarshalStartAuthSession(0x81000000, nonce, salt),
                                 "8001 0000015b 00000176 81000000 40000007 0040 " + Rep("a5", 64) +
                                     " 0100 " + Rep("5a", 256) + " 00 0010 000d",
                                 vars),
            "");
  EXPECT_EQ(testing::MatchLayout(MarshalFlushContext(0x02000003), "8001 0000000e 00000165 02000003",
                                 vars),
            "");
}

TEST(NitroRaw, SaltIsRsaOaepSha256WithTheSecretLabel) {
  // A fresh RSA-2048 key; the openssl command decrypts what EncryptSalt made, with
  // the label "SECRET\0" (hex 53454352455400) and SHA-256 for OAEP and MGF1.
  PkeyPtr key(EVP_RSA_gen(2048));
  ASSERT_TRUE(key);
  BIGNUM* n = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
  RsaPublicKey pub;
  pub.modulus.resize(BN_num_bytes(n));
  BN_bn2bin(n, pub.modulus.data());
  BN_free(n);
  pub.exponent = 0;  // the TPM's way of saying 65537
  auto ct = EncryptSalt(pub, Salt());
  ASSERT_TRUE(ct.ok()) << ct.error().ToString();
  ASSERT_EQ(ct->size(), 256u);

  const std::string dir = testing::MakeTempDir("oaep");
  {
    BioPtr bio(BIO_new_file((dir + "/key.pem").c_str(), "w"));
    ASSERT_TRUE(
        PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr));
    std::ofstream(dir + "/ct", std::ios::binary)
        .write(reinterpret_cast<const char*>(ct->data()), static_cast<std::streamsize>(ct->size()));
  }
  auto decrypt = [&](const std::string& label) {
    int status = -1;
    const std::string out =
        testing::RunCommand("openssl pkeyutl -decrypt -inkey " + dir + "/key.pem -in " + dir +
                                "/ct -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 "
                                "-pkeyopt rsa_mgf1_md:sha256 -pkeyopt rsa_oaep_label:" +
                                label + " 2>/dev/null",
                            &status);
    return status == 0 ? std::optional<std::string>(out) : std::nullopt;
  };
  auto plain = decrypt("53454352455400");
  ASSERT_TRUE(plain);
  EXPECT_EQ(Bytes(plain->begin(), plain->end()), Salt());
  EXPECT_FALSE(decrypt("534543524554")) << "the label's NUL octet is part of it";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace modelseal::tpm::nitro
