#include <openssl/rand.h>
#include <openssl/sha.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/tpm/swtpm_env.h"
#include "tpm/pcr15.h"

namespace modelseal {
namespace {

using testing::SwtpmSuite;

Bytes Sha384Of(const std::string& s) {
  Bytes d(48);
  SHA384(reinterpret_cast<const uint8_t*>(s.data()), s.size(), d.data());
  return d;
}

class TpmTest : public SwtpmSuite {};

TEST_F(TpmTest, BothBanksAllocatedAndReadsMatchTpm2PcrRead) {
  auto tpm = OpenTpm();
  ASSERT_TRUE(tpm);
  auto banks = tpm->AllocatedBanks();
  ASSERT_TRUE(banks.ok()) << banks.error().ToString();
  EXPECT_EQ(*banks, (std::vector<tpm::Bank>{tpm::Bank::kSha256, tpm::Bank::kSha384}));
  for (tpm::Bank b : *banks) {
    auto ours = tpm->ReadPcrs(b);
    ASSERT_TRUE(ours.ok()) << ours.error().ToString();
    ASSERT_EQ(ours->size(), 24u);
    auto theirs = testing::Tpm2PcrRead(swtpm_->tcti(), tpm::BankName(b));
    ASSERT_EQ(theirs.size(), 24u) << "tpm2_pcrread output not understood";
    EXPECT_EQ(*ours, theirs) << tpm::BankName(b);
  }
  auto sha1 = tpm->ReadPcrs(tpm::Bank::kSha1);
  ASSERT_FALSE(sha1.ok());
  EXPECT_EQ(sha1.error().reason, "bank-not-allocated");
}

TEST_F(TpmTest, Pcr15ExtendMatchesReplayAndTpm2PcrRead) {
  Restart();  // PCR15 starts at zero for this test
  auto tpm = OpenTpm();
  ASSERT_TRUE(tpm);
  const std::string state = testing::MakeTempDir("state");
  std::vector<Bytes> digests = {Sha384Of("model-a"), Sha384Of("model-b")};
  ASSERT_TRUE(tpm::ExtendPcr15(*tpm, state, digests[0], "a.gguf").ok());
  auto e = tpm::ExtendPcr15(*tpm, state, digests[1], "b.gguf");
  ASSERT_TRUE(e.ok()) << e.error().ToString();
  const Bytes expected = tpm::ReplayPcr15(digests);
  EXPECT_EQ(e->pcr15_after, expected);
  EXPECT_EQ(testing::Tpm2PcrRead(swtpm_->tcti(), "sha384")[15], expected);
  auto st = tpm::ReadPcr15Log(*tpm, state);
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_TRUE(st->matches);
  EXPECT_FALSE(st->discarded_stale);
  ASSERT_EQ(st->log.entries.size(), 2u);
  EXPECT_EQ(st->log.entries[0].model_name, "a.gguf");
  EXPECT_EQ(st->live, expected);
  // The SHA-256 bank is untouched by model measurements.
  EXPECT_EQ(testing::Tpm2PcrRead(swtpm_->tcti(), "sha256")[15], Bytes(32, 0));

  // An extend behind the log's back is reported as a mismatch.
  int status = 0;
  testing::RunCommand("TPM2TOOLS_TCTI='" + swtpm_->tcti() +
                          "' tpm2_pcrextend 15:sha384=" + ToHex(Sha384Of("rogue")) + " 2>&1",
                      &status);
  ASSERT_EQ(status, 0);
  st = tpm::ReadPcr15Log(*tpm, state);
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->matches);
  EXPECT_NE(st->replayed, st->live);

  // A new boot of the TPM discards the old log.
  tpm.reset();
  Restart();
  tpm = OpenTpm();
  st = tpm::ReadPcr15Log(*tpm, state);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->discarded_stale);
  EXPECT_TRUE(st->log.entries.empty());
  EXPECT_TRUE(st->matches);
  EXPECT_EQ(st->live, Bytes(48, 0));
  std::filesystem::remove_all(state);
}

TEST_F(TpmTest, ConcurrentExtendsKeepOneConsistentLog) {
  Restart();
  const std::string state = testing::MakeTempDir("state");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      auto tpm = tpm::Tpm::Open({swtpm_->tcti()});
      if (!tpm.ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < 4; ++i) {
        const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!tpm::ExtendPcr15(**tpm, state, Sha384Of(name), name).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto tpm = OpenTpm();
  auto st = tpm::ReadPcr15Log(*tpm, state);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->log.entries.size(), 12u);
  EXPECT_TRUE(st->matches);
  std::filesystem::remove_all(state);
}

TEST_F(TpmTest, RejectsBadDigestSize) {
  auto tpm = OpenTpm();
  ASSERT_TRUE(tpm);
  auto e = tpm::ExtendPcr15(*tpm, testing::MakeTempDir("state"), Bytes(32, 1), "x");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().reason, "bad-digest");
}

TEST(TpmOpen, NoTpmIsAClearError) {
  // Port 1 on loopback: nothing listens there.
  auto t = tpm::Tpm::Open({"swtpm:host=127.0.0.1,port=1"});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().reason, "no-tpm");
  EXPECT_NE(t.error().message.find("swtpm:host=127.0.0.1,port=1"), std::string::npos);
}

TEST(TpmOpen, DefaultIsTheDeviceNitroTpmAttestUses) {
  // --tcti beats $MODELSEAL_TPM_TCTI beats $TPM_DEVICE (nitro-tpm-attest's variable)
  // beats /dev/tpm0: not /dev/tpmrm0, whose resource manager refuses vendor commands
  // before Linux 6.3.
  struct Env {
    std::string name;
    std::optional<std::string> old;
    explicit Env(const char* n) : name(n) {
      if (const char* v = std::getenv(n)) old = v;
    }
    ~Env() {
      if (old) {
        setenv(name.c_str(), old->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  } tcti("MODELSEAL_TPM_TCTI"), device("TPM_DEVICE");
  unsetenv("MODELSEAL_TPM_TCTI");
  unsetenv("TPM_DEVICE");
  EXPECT_EQ(tpm::DefaultTcti(), "device:/dev/tpm0");
  setenv("TPM_DEVICE", "/dev/tpm1", 1);
  EXPECT_EQ(tpm::DefaultTcti(), "device:/dev/tpm1");
  setenv("MODELSEAL_TPM_TCTI", "swtpm:port=2321", 1);
  EXPECT_EQ(tpm::DefaultTcti(), "swtpm:port=2321");
  unsetenv("MODELSEAL_TPM_TCTI");
  setenv("TPM_DEVICE", "/nonexistent/tpm9", 1);
  auto t = tpm::Tpm::Open();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().reason, "no-tpm");
  EXPECT_NE(t.error().message.find("device:/nonexistent/tpm9"), std::string::npos);
  EXPECT_NE(t.error().message.find("/nonexistent/tpm9: No such file or directory"),
            std::string::npos)
      << t.error().message;
}

TEST(TpmOpen, TpmWithoutSha384BankIsAClearError) {
  const std::string dir = testing::MakeTempDir("sha256only");
  int status = 0;
  const std::string out = testing::RunCommand(
      "swtpm_setup --tpm2 --tpmstate " + dir + " --pcr-banks sha256 --config /dev/null 2>&1",
      &status);
  ASSERT_EQ(status, 0) << out;
  auto s = tpm::Swtpm::Start({dir, 0});
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  auto t = tpm::Tpm::Open({(*s)->tcti()});
  ASSERT_TRUE(t.ok());
  auto r = (*t)->ReadPcrs(tpm::Bank::kSha384);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "no-sha384-bank");
  auto e = tpm::ExtendPcr15(**t, dir + "/state", Bytes(48, 1), "x");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().reason, "no-sha384-bank");
  t->reset();
  s->reset();
  std::filesystem::remove_all(dir);
}

TEST(TpmBanks, ParseAndPredict) {
  EXPECT_EQ(*tpm::ParseBank("sha384"), tpm::Bank::kSha384);
  EXPECT_FALSE(tpm::ParseBank("md5").ok());
  // From a fresh boot, nothing loaded: zeros; one model: SHA384(0^48 || d).
  EXPECT_EQ(tpm::ReplayPcr15({}), Bytes(48, 0));
  Bytes d = Sha384Of("m");
  Bytes buf(48, 0);
  buf.insert(buf.end(), d.begin(), d.end());
  Bytes want(48);
  SHA384(buf.data(), buf.size(), want.data());
  EXPECT_EQ(tpm::ReplayPcr15({d}), want);
}

// Counts and times must be unsigned integers in range: a float such as 1e300 was
// converted to uint32_t with undefined behaviour, -1 wrapped.
TEST(Pcr15Log, ParseRefusesCountsThatAreNotUnsignedIntegers) {
  const std::string digest(96, 'a');
  auto log = [&](const std::string& reset, const std::string& time) {
    return R"({"reset_count":)" + reset +
           R"(,"restart_count":0,"entries":[{"model":"m","sha384":")" + digest +
           R"(","pcr15_after":")" + digest + R"(","time_ms":)" + time + "}]}";
  };
  auto ok = tpm::ParsePcr15Log(log("4294967295", "1764000000000"));
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->boot.reset_count, 4294967295u);
  ASSERT_EQ(ok->entries.size(), 1u);
  EXPECT_EQ(ok->entries[0].time_ms, 1764000000000u);
  auto again = tpm::ParsePcr15Log(tpm::Pcr15LogToJson(*ok));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->entries[0].sha384, ok->entries[0].sha384);
  for (const auto& [reset, time] :
       std::vector<std::pair<std::string, std::string>>{{"1e300", "1"},
                                                        {"-1", "1"},
                                                        {"4294967296", "1"},
                                                        {"1.5", "1"},
                                                        {"0", "-5"},
                                                        {"0", "1e30"},
                                                        {"0", "\"1\""}}) {
    auto bad = tpm::ParsePcr15Log(log(reset, time));
    ASSERT_FALSE(bad.ok()) << reset << " " << time;
    EXPECT_EQ(bad.error().reason, "log-corrupt");
  }
}

}  // namespace
}  // namespace modelseal
