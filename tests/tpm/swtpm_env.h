// Test helpers: a swtpm started per test suite in a fresh temporary directory,
// and `tpm2_pcrread` as an independent reader of the same TPM.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "tpm/swtpm.h"
#include "tpm/tpm.h"

namespace modelseal::testing {

inline std::string MakeTempDir(const std::string& tag) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("modelseal-" + tag + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

inline std::string RunCommand(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  if (status) *status = st;
  return out;
}

// Parses `tpm2_pcrread <bank>:0,...,23` output ("  15: 0xABCD...") into index -> bytes.
inline std::map<uint32_t, Bytes> Tpm2PcrRead(const std::string& tcti, const std::string& bank) {
  std::string list;
  for (int i = 0; i < 24; ++i) list += (i ? "," : "") + std::to_string(i);
  const std::string out =
      RunCommand("TPM2TOOLS_TCTI='" + tcti + "' tpm2_pcrread " + bank + ":" + list + " 2>&1");
  std::map<uint32_t, Bytes> m;
  size_t pos = 0;
  while ((pos = out.find(": 0x", pos)) != std::string::npos) {
    size_t ls = out.rfind('\n', pos);
    ls = ls == std::string::npos ? 0 : ls + 1;
    const std::string idx = out.substr(ls, pos - ls);
    size_t end = out.find('\n', pos);
    const std::string hex = out.substr(pos + 4, end - pos - 4);
    auto b = FromHex(hex);
    if (b) m[static_cast<uint32_t>(std::stoul(idx))] = *b;
    pos = end == std::string::npos ? out.size() : end;
  }
  return m;
}

// A suite-wide swtpm; Restart() gives a new TPM boot.
class SwtpmSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = MakeTempDir("swtpm");
    auto s = tpm::Swtpm::Start({dir_ + "/tpm", 0});
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    swtpm_ = std::move(*s).release();
  }
  static void TearDownTestSuite() {
    delete swtpm_;
    swtpm_ = nullptr;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  static void Restart() {
    ASSERT_TRUE(swtpm_->Stop().ok());
    delete swtpm_;
    auto s = tpm::Swtpm::Start({dir_ + "/tpm", 0});
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    swtpm_ = std::move(*s).release();
  }
  std::unique_ptr<tpm::Tpm> OpenTpm() {
    auto t = tpm::Tpm::Open({swtpm_->tcti()});
    EXPECT_TRUE(t.ok()) << t.error().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }
  static inline std::string dir_;
  static inline tpm::Swtpm* swtpm_ = nullptr;
};

}  // namespace modelseal::testing
