#include <gtest/gtest.h>

#include "tests/sealed/testutil.h"

namespace modelseal::sealed {
namespace {

using testing::RandomData;
using testing::ReadAll;
using testing::TestKey;

Bytes LegacySeal(const Bytes& plain, const SecretBuffer& key) {
  MemorySource src(plain);
  VectorSink out;
  Status s = SealLegacy(src, out, key);
  if (!s.ok()) throw std::runtime_error(s.error().ToString());
  return std::move(out.bytes());
}

TEST(Legacy, RoundTrip) {
  const SecretBuffer key = TestKey();
  for (size_t n : {size_t{0}, size_t{1}, size_t{4096}, size_t{(5u << 20) + 3}}) {
    const Bytes plain = RandomData(n, static_cast<uint32_t>(n));
    const Bytes obj = LegacySeal(plain, key);
    ASSERT_EQ(obj.size(), 12 + n + 16);
    MemorySource src(obj);
    auto m = UnsealLegacyToMemfd(src, key);
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_TRUE(m->sealed());
    EXPECT_EQ(ReadAll(*m), plain);
  }
}

// The layout is exactly IV || ciphertext || tag of one AES-256-GCM message with no
// AAD: decrypt it independently with OpenSSL's one-shot API.
TEST(Legacy, LayoutIsIvCiphertextTag) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(1000, 8);
  const Bytes obj = LegacySeal(plain, key);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  ASSERT_EQ(EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), obj.data()), 1);
  Bytes out(plain.size());
  int n = 0;
  ASSERT_EQ(EVP_DecryptUpdate(ctx.get(), out.data(), &n, obj.data() + 12, 1000), 1);
  ASSERT_EQ(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16,
                                const_cast<uint8_t*>(obj.data() + 12 + 1000)),
            1);
  ASSERT_EQ(EVP_DecryptFinal_ex(ctx.get(), out.data() + n, &n), 1);
  EXPECT_EQ(out, plain);
}

TEST(Legacy, TamperingIsDetected) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(100000, 9);
  const Bytes obj = LegacySeal(plain, key);
  for (size_t pos :
       {size_t{0}, size_t{11}, size_t{12}, size_t{50000}, obj.size() - 17, obj.size() - 1}) {
    Bytes t = obj;
    t[pos] ^= 0x04;
    MemorySource src(t);
    auto m = UnsealLegacyToMemfd(src, key);
    ASSERT_FALSE(m.ok()) << pos;
    EXPECT_EQ(m.error().reason, "legacy-auth-failed");
  }
  Bytes truncated(obj.begin(), obj.end() - 100);
  MemorySource tsrc(truncated);
  EXPECT_EQ(UnsealLegacyToMemfd(tsrc, key).error().reason, "legacy-auth-failed");
  const SecretBuffer wrong = TestKey(1);
  MemorySource src(obj);
  EXPECT_EQ(UnsealLegacyToMemfd(src, wrong).error().reason, "legacy-auth-failed");
  Bytes tiny(27);
  MemorySource tiny_src(tiny);
  auto t = UnsealLegacyToMemfd(tiny_src, key);
  EXPECT_EQ(t.error().reason, "legacy-too-short");
  EXPECT_EQ(t.error().message, "legacy object is 27 bytes, shorter than IV and tag (28)");
}

}  // namespace
}  // namespace modelseal::sealed
