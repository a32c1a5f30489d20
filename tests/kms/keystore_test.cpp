#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kms/keystore.h"

namespace modelseal::kms {
namespace {

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("ms-ks-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<KeyStore> OpenStore() {
    auto ks = KeyStore::Open(dir_, "eu-west-1", "111122223333");
    EXPECT_TRUE(ks.ok()) << ks.error().ToString();
    return ks.ok() ? std::move(*ks) : nullptr;
  }
  std::string dir_;
};

TEST_F(KeyStoreTest, CreateDescribeAliasPersist) {
  std::string id;
  {
    auto ks = OpenStore();
    auto k = ks->CreateKey("model key", "{}");
    ASSERT_TRUE(k.ok());
    id = k->key_id;
    EXPECT_EQ(k->arn, "arn:aws:kms:eu-west-1:111122223333:key/" + id);
    ASSERT_TRUE(ks->CreateAlias("alias/models", id).ok());
    EXPECT_EQ(ks->CreateAlias("alias/models", id).error().reason, "already-exists");
    EXPECT_EQ(ks->CreateAlias("alias/aws/x", id).error().reason, "invalid-alias");
  }
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto ks = OpenStore();
  for (const std::string& ref :
       {id, "arn:aws:kms:eu-west-1:111122223333:key/" + id, std::string("alias/models"),
        std::string("arn:aws:kms:eu-west-1:111122223333:alias/models")}) {
    auto d = ks->Describe(ref);
    ASSERT_TRUE(d.ok()) << ref;
    EXPECT_EQ(d->key_id, id);
    EXPECT_EQ(d->description, "model key");
  }
  EXPECT_EQ(ks->Describe("alias/none").error().reason, "not-found");
  EXPECT_EQ(ks->List().size(), 1u);
}

TEST_F(KeyStoreTest, EncryptDecryptBindsContext) {
  auto ks = OpenStore();
  auto k = ks->CreateKey("", "{}");
  ASSERT_TRUE(k.ok());
  const Bytes secret = {1, 2, 3, 4, 5};
  EncryptionContext ctx = {{"model", "tiny"}};
  auto blob = ks->Encrypt(k->key_id, secret, ctx);
  ASSERT_TRUE(blob.ok());
  auto back = ks->Decrypt(*blob, ctx);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(Bytes(back->plaintext.data(), back->plaintext.data() + back->plaintext.size()), secret);
  EXPECT_EQ(back->key.key_id, k->key_id);

  EXPECT_EQ(ks->Decrypt(*blob, {{"model", "other"}}).error().reason, "invalid-ciphertext");
  EXPECT_EQ(ks->Decrypt(*blob, {}).error().reason, "invalid-ciphertext");
  Bytes flipped = *blob;
  flipped.back() ^= 1;
  EXPECT_EQ(ks->Decrypt(flipped, ctx).error().reason, "invalid-ciphertext");
  EXPECT_EQ(ks->Decrypt(Bytes{1, 2}, ctx).error().reason, "invalid-ciphertext");

  ASSERT_TRUE(ks->ScheduleDeletion(k->key_id, 7).ok());
  EXPECT_EQ(ks->Decrypt(*blob, ctx).error().reason, "invalid-state");
  EXPECT_EQ(ks->Encrypt(k->key_id, secret, ctx).error().reason, "invalid-state");
}

TEST_F(KeyStoreTest, RefusesAMasterKeyOthersCanRead) {
  { OpenStore(); }
  chmod((dir_ + "/master.key").c_str(), 0644);
  auto ks = KeyStore::Open(dir_, "eu-west-1", "111122223333");
  ASSERT_FALSE(ks.ok());
  EXPECT_EQ(ks.error().reason, "insecure-master-key");
}

// A writer killed with SIGKILL at arbitrary moments leaves a store that opens and
// whose every listed key still works.
TEST_F(KeyStoreTest, SurvivesKillDashNine) {
  { OpenStore(); }
  size_t keys_before = 0;
  for (int round = 0; round < 8; ++round) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t pid = fork();
    if (pid == 0) {
      close(ready[0]);
      auto ks = KeyStore::Open(dir_, "eu-west-1", "111122223333");
      if (!ks.ok()) _exit(2);
      for (int i = 0; i < 100000; ++i) {
        auto k = (*ks)->CreateKey("k" + std::to_string(i), "{\"Statement\": []}");
        if (!k.ok()) _exit(3);
        (void)(*ks)->PutPolicy(k->key_id, "{}");
        if (i == 0) {  // one key is on disk: the parent may kill from now on
          const char c = 1;
          if (write(ready[1], &c, 1) != 1) _exit(4);
        }
      }
      _exit(0);
    }
    close(ready[1]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "the writer failed before its first key";
    close(ready[0]);
    usleep(static_cast<useconds_t>(round * 3000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer ended on its own (status " << status << ")";
    auto ks = OpenStore();
    ASSERT_TRUE(ks) << "store unreadable after kill in round " << round;
    const auto keys = ks->List();
    // What the killed writer committed is there: at least its first key per round.
    EXPECT_GE(keys.size(), keys_before + 1) << "round " << round;
    keys_before = keys.size();
    for (const auto& k : keys) {
      auto blob = ks->Encrypt(k.key_id, Bytes{9}, {});
      ASSERT_TRUE(blob.ok()) << k.key_id;
      ASSERT_TRUE(ks->Decrypt(*blob, {}).ok());
    }
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "master.key" || name == "keys.json") << "left behind: " << name;
  }
}

TEST_F(KeyStoreTest, StoreFileIsPrivateAndAuthenticated) {
  std::string id;
  {
    auto ks = KeyStore::Open(dir_, "eu-west-1", "111122223333");
    ASSERT_TRUE(ks.ok());
    auto key = (*ks)->CreateKey("k", R"({"Statement": []})");
    ASSERT_TRUE(key.ok());
    id = key->key_id;
  }
  const std::string path = dir_ + "/keys.json";
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // Edit the policy the way an attacker with write access to the file would.
  std::string text;
  {
    std::ifstream f(path);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  const size_t at = text.find("\"description\": \"k\"");
  ASSERT_NE(at, std::string::npos) << text;
  std::string tampered = text;
  tampered.replace(at, 18, "\"description\": \"x\"");
  std::ofstream(path, std::ios::trunc) << tampered;
  auto refused = KeyStore::Open(dir_, "eu-west-1", "111122223333");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().reason, "store-tampered");
  // Removing the MAC is no way around it.
  auto doc = nlohmann::json::parse(text);
  doc.erase("mac");
  std::ofstream(path, std::ios::trunc) << doc.dump();
  EXPECT_EQ(KeyStore::Open(dir_, "eu-west-1", "111122223333").error().reason, "corrupt-store");
  // A version-1 file (written before authentication) is refused unless upgraded.
  doc["version"] = 1;
  std::ofstream(path, std::ios::trunc) << doc.dump();
  EXPECT_EQ(KeyStore::Open(dir_, "eu-west-1", "111122223333").error().reason,
            "unauthenticated-store");
  KeyStore::OpenOptions upgrade;
  upgrade.accept_unauthenticated = true;
  auto upgraded = KeyStore::Open(dir_, "eu-west-1", "111122223333", upgrade);
  ASSERT_TRUE(upgraded.ok()) << upgraded.error().ToString();
  EXPECT_TRUE((*upgraded)->Describe(id).ok());
  upgraded->reset();
  EXPECT_TRUE(KeyStore::Open(dir_, "eu-west-1", "111122223333").ok());
}

TEST_F(KeyStoreTest, BlobKeyIdMustBeAKeyId) {
  auto ks = KeyStore::Open(dir_, "eu-west-1", "111122223333");
  ASSERT_TRUE(ks.ok());
  auto key = (*ks)->CreateKey("k", "{}");
  auto blob = (*ks)->Encrypt(key->key_id, Bytes{1}, {});
  ASSERT_TRUE(blob.ok());
  EXPECT_TRUE(KeyStore::BlobKeyId(*blob).ok());
  Bytes bad = *blob;
  bad[6] = 0xc3;  // a lone UTF-8 lead byte
  EXPECT_EQ(KeyStore::BlobKeyId(bad).error().reason, "invalid-ciphertext");
}

}  // namespace
}  // namespace modelseal::kms
