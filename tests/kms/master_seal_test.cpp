// Sealing the key store's master key to a TPM (swtpm): the store opens through
// the TPM, the plain key is gone, and a changed PCR keeps it closed.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "kms/keystore.h"
#include "kms/master_seal.h"
#include "tpm/swtpm.h"
#include "tpm/tpm.h"

namespace modelseal::kms {
namespace {

class MasterSealTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ms-seal-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = new std::string(tmpl);
    auto s = tpm::Swtpm::Start({*root_ + "/tpm", 0});
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    swtpm_ = s->release();
  }
  static void TearDownTestSuite() {
    delete swtpm_;
    std::filesystem::remove_all(*root_);
    delete root_;
  }
  static std::string* root_;
  static tpm::Swtpm* swtpm_;
};
std::string* MasterSealTest::root_ = nullptr;
tpm::Swtpm* MasterSealTest::swtpm_ = nullptr;

TEST_F(MasterSealTest, StoreOpensThroughTheTpmOnly) {
  const std::string dir = *root_ + "/keys";
  Bytes blob;
  {
    auto ks = KeyStore::Open(dir, "eu-west-1", "111122223333");
    ASSERT_TRUE(ks.ok());
    auto key = (*ks)->CreateKey("k", "{}");
    ASSERT_TRUE(key.ok());
    blob = *(*ks)->Encrypt(key->key_id, Bytes{1, 2, 3}, {});
  }
  ASSERT_TRUE(KeyStore::SealMasterKeyFile(dir, {swtpm_->tcti(), {}}).ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/master.key"));
  EXPECT_EQ(
      std::filesystem::status(dir + "/master.sealed").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  KeyStore::OpenOptions opts;
  opts.tcti = swtpm_->tcti();
  auto ks = KeyStore::Open(dir, "eu-west-1", "111122223333", opts);
  ASSERT_TRUE(ks.ok()) << ks.error().ToString();
  auto opened = (*ks)->Decrypt(blob, {});
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  EXPECT_EQ(Bytes(opened->plaintext.data(), opened->plaintext.data() + 3), (Bytes{1, 2, 3}));
  // Sealing twice is refused.
  EXPECT_EQ(KeyStore::SealMasterKeyFile(dir, {swtpm_->tcti(), {}}).error().reason,
            "already-exists");
  // Without a TPM the store does not open.
  opts.tcti = "swtpm:host=127.0.0.1,port=1";
  EXPECT_FALSE(KeyStore::Open(dir, "eu-west-1", "111122223333", opts).ok());
}

TEST_F(MasterSealTest, ChangedPcrKeepsTheKeySealed) {
  SecretBuffer key(32);
  key.data()[0] = 7;
  auto sealed = SealMasterKey(key, {swtpm_->tcti(), {23}});
  ASSERT_TRUE(sealed.ok()) << sealed.error().ToString();
  auto back = UnsealMasterKey(*sealed, swtpm_->tcti());
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->data()[0], 7);
  {
    auto t = tpm::Tpm::Open({swtpm_->tcti()});
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE((*t)->ExtendPcr(23, tpm::Bank::kSha256, Bytes(32, 9)).ok());
  }
  auto refused = UnsealMasterKey(*sealed, swtpm_->tcti());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().reason, "tpm-unseal");
  // A damaged file is refused before the TPM is asked.
  Bytes damaged = *sealed;
  damaged[damaged.size() / 2] ^= 0x20;
  EXPECT_FALSE(UnsealMasterKey(damaged, swtpm_->tcti()).ok());
}

}  // namespace
}  // namespace modelseal::kms
