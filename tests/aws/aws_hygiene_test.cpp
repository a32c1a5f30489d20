// Secret handling of the AWS credentials and SigV4 signing: the secret access key
// and the keys derived from it leave no copy in this process's memory once the
// objects that hold them are gone. Secrets are made in forked children so the
// test itself never holds them unmasked (see tests/support/memscan.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "aws/aws.h"
#include "tests/support/memscan.h"
#include "tests/support/testenv.h"

namespace modelseal::aws {
namespace {

using testsupport::DescribeHits;
using testsupport::FindInMemory;
using testsupport::MaskedNeedle;
using testsupport::MemoryHit;
using testsupport::NeedleFromChild;

constexpr size_t kSecretLen = 40;
// Bytes [16, 40) of a secret: the part a freed heap block keeps (malloc writes its
// free-list pointers over the first 16 bytes).
constexpr size_t kTail = 16;

// A random secret of base64-ish characters, made by the child that writes it.
void RandomSecret(uint8_t* out) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint8_t r[kSecretLen];
  if (RAND_bytes(r, sizeof(r)) != 1) std::abort();
  for (size_t i = 0; i < kSecretLen; ++i) out[i] = static_cast<uint8_t>(kAlphabet[r[i] % 64]);
}

// Saves and restores the variables the credentials chain reads.
class AwsEnv {
 public:
  explicit AwsEnv(const std::string& dir) {
    for (const char* k : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                          "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"}) {
      const char* v = std::getenv(k);
      saved_.emplace_back(k, v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(k);
    }
    setenv("AWS_CONFIG_FILE", (dir + "/config").c_str(), 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", (dir + "/credentials").c_str(), 1);
  }
  ~AwsEnv() {
    for (auto& [k, v] : saved_) {
      if (v) {
        setenv(k.c_str(), v->c_str(), 1);
      } else {
        unsetenv(k.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Hits that are the environment's own "AWS_SECRET_ACCESS_KEY=..." string: the
// process environment holds the variable whatever the code does with it.
std::vector<MemoryHit> OutsideTheEnvironment(const std::vector<MemoryHit>& hits) {
  static const std::string kPrefix = "AWS_SECRET_ACCESS_KEY=";
  std::vector<MemoryHit> out;
  const int fd = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  for (const auto& h : hits) {
    char before[64] = {0};
    const uintptr_t at = h.address - kTail - kPrefix.size();
    const bool is_env = pread(fd, before, kPrefix.size(), static_cast<off_t>(at)) ==
                            static_cast<ssize_t>(kPrefix.size()) &&
                        kPrefix == std::string(before, kPrefix.size());
    if (!is_env) out.push_back(h);
  }
  ::close(fd);
  return out;
}

__attribute__((noinline)) void SetSecretVariable(const MaskedNeedle& secret) {
  SecretBuffer value(secret.size() + 1);
  for (size_t i = 0; i < secret.size(); ++i) value.data()[i] = secret.At(i);
  setenv("AWS_SECRET_ACCESS_KEY", reinterpret_cast<const char*>(value.data()), 1);
}

TEST(CredentialHygiene, TheEnvironmentSecretLeavesNoCopyBehind) {
  const std::string dir = testenv::MakeTempDir("awshyg-env");
  AwsEnv env(dir);
  // The child hands back the whole secret masked; it is unmasked only inside
  // setenv's argument, a SecretBuffer that is wiped right after.
  const MaskedNeedle whole = NeedleFromChild(kSecretLen, RandomSecret);
  std::vector<uint8_t> tail_masked(kSecretLen - kTail);
  for (size_t i = kTail; i < kSecretLen; ++i) {
    tail_masked[i - kTail] = whole.At(i) ^ MaskedNeedle::kMask;
  }
  const MaskedNeedle tail = MaskedNeedle::FromMasked(tail_masked);
  setenv("AWS_ACCESS_KEY_ID", "AKIDHYGIENE", 1);
  SetSecretVariable(whole);
  testsupport::ScrubStack();  // setenv builds "NAME=value" on its stack
  {
    auto creds = EnvironmentCredentials()->Get();
    ASSERT_TRUE(creds.ok()) << creds.error().ToString();
    ASSERT_EQ((*creds)->secret_access_key.size(), kSecretLen);
    // The needle is right (checked without a scan: a scan allocates, and could
    // reuse a freed block that still holds the secret).
    for (size_t i = 0; i < tail.size(); ++i) {
      ASSERT_EQ((*creds)->secret_access_key.data()[kTail + i], tail.At(i));
    }
  }
  const auto hits = OutsideTheEnvironment(FindInMemory(tail));
  EXPECT_TRUE(hits.empty()) << "copies of the secret access key outside the environment:\n"
                            << DescribeHits(hits);
  testenv::RemoveTree(dir);
}

TEST(CredentialHygiene, TheSharedCredentialsFileLeavesNoCopyBehind) {
  const std::string dir = testenv::MakeTempDir("awshyg-file");
  AwsEnv env(dir);
  // The child makes the secret and writes the credentials file itself.
  const std::string path = dir + "/credentials";
  const MaskedNeedle whole = NeedleFromChild(kSecretLen, [&](uint8_t* secret) {
    RandomSecret(secret);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const std::string head = "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = ";
    const std::string tail = "  # the key\n; another comment\naws_session_token=tok\n";
    if (::write(fd, head.data(), head.size()) < 0 || ::write(fd, secret, kSecretLen) < 0 ||
        ::write(fd, tail.data(), tail.size()) < 0) {
      std::abort();
    }
    ::close(fd);
  });
  std::vector<uint8_t> tail_masked;
  for (size_t i = kTail; i < kSecretLen; ++i)
    tail_masked.push_back(whole.At(i) ^ MaskedNeedle::kMask);
  const MaskedNeedle tail = MaskedNeedle::FromMasked(tail_masked);
  {
    auto creds = ProfileCredentials()->Get();
    ASSERT_TRUE(creds.ok()) << creds.error().ToString();
    EXPECT_EQ((*creds)->access_key_id, "AKIDFILE");
    EXPECT_EQ((*creds)->session_token, "tok");
    ASSERT_EQ((*creds)->secret_access_key.size(), kSecretLen);
    for (size_t i = 0; i < tail.size(); ++i) {  // the needle is right
      ASSERT_EQ((*creds)->secret_access_key.data()[kTail + i], tail.At(i));
    }
    auto values = LoadProfile("default");
    ASSERT_TRUE(values.ok());
    EXPECT_EQ(values->count("aws_secret_access_key"), 0u);
    EXPECT_EQ(values->at("aws_access_key_id"), "AKIDFILE");
  }
  auto hits = FindInMemory(tail);
  EXPECT_TRUE(hits.empty()) << "copies of the secret access key from the file:\n"
                            << DescribeHits(hits);
  {  // The same file named in the configuration (FileCredentials).
    auto creds = FileCredentials(path, "default")->Get();
    ASSERT_TRUE(creds.ok()) << creds.error().ToString();
    EXPECT_EQ((*creds)->access_key_id, "AKIDFILE");
    ASSERT_EQ((*creds)->secret_access_key.size(), kSecretLen);
    for (size_t i = 0; i < tail.size(); ++i) {
      ASSERT_EQ((*creds)->secret_access_key.data()[kTail + i], tail.At(i));
    }
  }
  hits = FindInMemory(tail);
  EXPECT_TRUE(hits.empty()) << "copies of the secret access key from FileCredentials:\n"
                            << DescribeHits(hits);
  testenv::RemoveTree(dir);
}

// ----------------------------------------------------------------- SigV4

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

// kDate, kRegion, kService and kSigning as AWS documents them, computed with
// OpenSSL's HMAC in a child; `which` picks one.
MaskedNeedle DerivedKeyNeedle(int which) {
  return NeedleFromChild(32, [which](uint8_t* out) {
    uint8_t k[32];
    unsigned len = 0;
    const std::string first = std::string("AWS4") + kSecret;
    const char* msgs[] = {"20150830", "us-east-1", "iam", "aws4_request"};
    HMAC(EVP_sha256(), first.data(), static_cast<int>(first.size()),
         reinterpret_cast<const uint8_t*>(msgs[0]), std::strlen(msgs[0]), k, &len);
    for (int i = 1; i <= which; ++i) {
      HMAC(EVP_sha256(), k, 32, reinterpret_cast<const uint8_t*>(msgs[i]), std::strlen(msgs[i]), k,
           &len);
    }
    std::memcpy(out, k, 32);
  });
}

struct SignOnOwnStack {
  SignableRequest req;
  std::shared_ptr<const Credentials> creds;
  SigningParams params;
};

void* SignThread(void* arg) {
  auto* s = static_cast<SignOnOwnStack*>(arg);
  SignHeaders(s->req, *s->creds, s->params, kEmptyPayloadSha256);
  return nullptr;
}

// Signs on a thread whose stack this test owns (it stays mapped after the thread
// ends), then looks for the derived keys anywhere in memory, that stack included.
TEST(SigningHygiene, DerivedKeysLeaveNoCopyOnTheStackOrHeap) {
  MaskedNeedle needles[] = {DerivedKeyNeedle(0), DerivedKeyNeedle(1), DerivedKeyNeedle(2),
                            DerivedKeyNeedle(3)};
  const char* names[] = {"kDate", "kRegion", "kService", "kSigning"};
  constexpr size_t kStack = 1 << 20;
  void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(stack, MAP_FAILED);
  {
    SignOnOwnStack s;
    s.req.method = "GET";
    s.req.path = "/";
    s.req.query = {{"Action", "ListUsers"}, {"Version", "2010-05-08"}};
    s.req.headers = {{"Host", "iam.amazonaws.com"},
                     {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    s.creds = Credentials::Make("AKIDEXAMPLE", std::string_view(kSecret));
    s.params.region = "us-east-1";
    s.params.service = "iam";
    s.params.time = std::chrono::system_clock::from_time_t(1440938160);  // 2015-08-30T12:36:00Z
    s.params.add_content_sha256 = false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, kStack);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, &attr, SignThread, &s), 0);
    pthread_join(t, nullptr);
    pthread_attr_destroy(&attr);
    // The signature of AWS's own example (docs: "Create a signed AWS API request").
    bool found = false;
    for (const auto& [n, v] : s.req.headers) {
      if (n == "authorization") {
        found = true;
        EXPECT_NE(
            v.find("Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"),
            std::string::npos)
            << v;
      }
    }
    EXPECT_TRUE(found);
  }
  for (int i = 0; i < 4; ++i) {
    const auto hits = FindInMemory(needles[i]);
    EXPECT_TRUE(hits.empty()) << names[i] << " is still in memory after signing:\n"
                              << DescribeHits(hits);
  }
  munmap(stack, kStack);
}

}  // namespace
}  // namespace modelseal::aws
