// Test access to the tap TCTI (tap_tcti.cpp): the TCTI string that puts it in
// front of another TCTI, the commands and responses it recorded, and the faults it
// injects. Also an independent view of the TPM's handles through tpm2_getcap.
#pragma once

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "tests/tpm/swtpm_env.h"

namespace modelseal::testing {

struct TapRecord {
  Bytes command;
  Bytes response;
  bool injected = false;  // answered by the tap, not the TPM
};

class Tap {
 public:
  Tap() {
    handle_ = dlopen(MS_TAP_TCTI_PATH, RTLD_NOW);
    if (handle_ == nullptr) return;
    reset_ = reinterpret_cast<void (*)()>(dlsym(handle_, "ms_tap_reset"));
    fail_ = reinterpret_cast<void (*)(uint32_t, uint32_t, uint32_t)>(dlsym(handle_, "ms_tap_fail"));
    set_property_ =
        reinterpret_cast<void (*)(uint32_t, uint32_t)>(dlsym(handle_, "ms_tap_set_property"));
    count_ = reinterpret_cast<size_t (*)()>(dlsym(handle_, "ms_tap_count"));
    record_ =
        reinterpret_cast<bool (*)(size_t, Bytes*, Bytes*, bool*)>(dlsym(handle_, "ms_tap_record"));
  }
  ~Tap() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  Tap(const Tap&) = delete;
  Tap& operator=(const Tap&) = delete;

  bool loaded() const {
    return handle_ != nullptr && reset_ && fail_ && set_property_ && count_ && record_;
  }
  static std::string Error() {
    const char* e = dlerror();
    return e ? e : "";
  }
  // The TCTI string for Tpm::Open that puts the tap in front of `inner`.
  static std::string Tcti(const std::string& inner) {
    return std::string(MS_TAP_TCTI_PATH) + ":" + inner;
  }

  void Reset() { reset_(); }
  // Answer the `occurrence`-th command (1-based, since Reset) with `command_code`
  // with response code `rc` instead of sending it to the TPM.
  void Fail(uint32_t command_code, uint32_t occurrence, uint32_t rc) {
    fail_(command_code, occurrence, rc);
  }
  // Report `value` for `property` in TPM2_GetCapability(TPM_PROPERTIES) responses.
  void SetProperty(uint32_t property, uint32_t value) { set_property_(property, value); }
  std::vector<TapRecord> Records() {
    std::vector<TapRecord> out(count_());
    for (size_t i = 0; i < out.size(); ++i) {
      record_(i, &out[i].command, &out[i].response, &out[i].injected);
    }
    return out;
  }

 private:
  void* handle_ = nullptr;
  void (*reset_)() = nullptr;
  void (*fail_)(uint32_t, uint32_t, uint32_t) = nullptr;
  void (*set_property_)(uint32_t, uint32_t) = nullptr;
  size_t (*count_)() = nullptr;
  bool (*record_)(size_t, Bytes*, Bytes*, bool*) = nullptr;
};

// The handles of one kind ("handles-persistent", "handles-nv-index",
// "handles-transient", "handles-loaded-session", "handles-saved-session") as
// tpm2_getcap lists them through `tcti`. Fails the test when tpm2_getcap fails or
// prints anything but a handle list.
inline void GetcapHandles(const std::string& tcti, const std::string& kind,
                          std::vector<uint32_t>* out) {
  out->clear();
  int status = -1;
  const std::string text =
      RunCommand("TPM2TOOLS_TCTI='" + tcti + "' tpm2_getcap " + kind + " 2>&1", &status);
  ASSERT_EQ(status, 0) << "tpm2_getcap " << kind << " failed: " << text;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("- 0x", 0), 0u) << "unexpected tpm2_getcap " << kind << " line: " << line;
    out->push_back(static_cast<uint32_t>(std::stoul(line.substr(4), nullptr, 16)));
  }
}

// Every kind of handle a failed request could leave behind.
struct TpmHandles {
  std::vector<uint32_t> persistent, nv, transient, loaded_sessions, saved_sessions;
  bool operator==(const TpmHandles&) const = default;
};

inline void AllHandles(const std::string& tcti, TpmHandles* h, bool sessions_and_transients) {
  ASSERT_NO_FATAL_FAILURE(GetcapHandles(tcti, "handles-persistent", &h->persistent));
  ASSERT_NO_FATAL_FAILURE(GetcapHandles(tcti, "handles-nv-index", &h->nv));
  if (!sessions_and_transients) return;
  ASSERT_NO_FATAL_FAILURE(GetcapHandles(tcti, "handles-transient", &h->transient));
  ASSERT_NO_FATAL_FAILURE(GetcapHandles(tcti, "handles-loaded-session", &h->loaded_sessions));
  ASSERT_NO_FATAL_FAILURE(GetcapHandles(tcti, "handles-saved-session", &h->saved_sessions));
}

}  // namespace modelseal::testing
