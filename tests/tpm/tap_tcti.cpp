// A tss2 TCTI module for tests that sits between the TSS and another TCTI:
//
//   Tpm::Open({"<path of this module>:swtpm:host=127.0.0.1,port=2321"})
//
// loads it through the ordinary TCTI loader; it opens the TCTI named after the first
// ':' and forwards every command to it. On the way it records each command and
// response (the byte-for-byte layout tests read them), and it can inject the faults
// a real TPM will not produce on demand: answer the n-th command with a given code
// with an error instead of sending it, or report a TPM property value other than
// the TPM's in TPM2_GetCapability responses. The test controls it through the
// ms_tap_* functions below (dlopen the same path, dlsym them): a module loaded
// twice by path is one copy, so both see the same state. Not for production use.
#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

namespace {

struct Record {
  std::vector<uint8_t> command;
  std::vector<uint8_t> response;
  bool injected = false;
};

struct Rule {
  uint32_t command_code;
  uint32_t occurrence;  // 1-based, counted since the last reset
  uint32_t rc;
};

struct State {
  std::mutex mu;
  std::vector<Record> records;
  std::vector<Rule> rules;
  std::vector<std::pair<uint32_t, uint32_t>> properties;  // property -> value
};

State& S() {
  static State s;
  return s;
}

constexpr uint64_t kMagic = 0x6d735f7461707463ULL;  // "ms_tapc"

struct Context {
  TSS2_TCTI_CONTEXT_COMMON_V2 common;
  TSS2_TCTI_CONTEXT* inner;
  std::vector<uint8_t> pending;  // an injected response not yet received
  bool has_pending;
};

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void PutBe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

Context* Cast(TSS2_TCTI_CONTEXT* c) {
  auto* ctx = reinterpret_cast<Context*>(c);
  return ctx != nullptr && ctx->common.v1.magic == kMagic ? ctx : nullptr;
}

// Rewrites TPMS_TAGGED_PROPERTY values in a TPM2_GetCapability(TPM_PROPERTIES)
// response: header(10) moreData(1) capability(4) count(4) {property(4) value(4)}*.
void RewriteProperties(std::vector<uint8_t>& resp,
                       const std::vector<std::pair<uint32_t, uint32_t>>& props) {
  if (resp.size() < 19 || Be32(&resp[6]) != 0 || Be32(&resp[11]) != TPM2_CAP_TPM_PROPERTIES) {
    return;
  }
  const uint32_t count = Be32(&resp[15]);
  for (uint32_t i = 0; i < count && 19 + 8 * (i + 1) <= resp.size(); ++i) {
    uint8_t* entry = &resp[19 + 8 * i];
    for (const auto& [prop, value] : props) {
      if (Be32(entry) == prop) PutBe32(entry + 4, value);
    }
  }
}

TSS2_RC Transmit(TSS2_TCTI_CONTEXT* c, size_t size, const uint8_t* command) {
  Context* ctx = Cast(c);
  if (ctx == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  if (size < 10) return TSS2_TCTI_RC_BAD_VALUE;
  State& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  const uint32_t cc = Be32(command + 6);
  // Occurrences count commands, not transmissions: one the TPM asked to have sent
  // again (TPM_RC_RETRY, _YIELDED, _TESTING) is counted once.
  uint32_t seen = 0;
  for (const auto& r : s.records) {
    const uint32_t rc = r.response.size() >= 10 ? Be32(r.response.data() + 6) : 0;
    const bool again = rc == 0x922 || rc == 0x908 || rc == 0x90a;
    if (Be32(r.command.data() + 6) == cc && !again) ++seen;
  }
  s.records.push_back({std::vector<uint8_t>(command, command + size), {}, false});
  for (const auto& rule : s.rules) {
    if (rule.command_code == cc && rule.occurrence == seen + 1) {
      ctx->pending.assign(10, 0);
      ctx->pending[0] = 0x80;
      ctx->pending[1] = 0x01;  // TPM_ST_NO_SESSIONS
      PutBe32(&ctx->pending[2], 10);
      PutBe32(&ctx->pending[6], rule.rc);
      ctx->has_pending = true;
      s.records.back().injected = true;
      return TSS2_RC_SUCCESS;
    }
  }
  return Tss2_Tcti_Transmit(ctx->inner, size, command);
}

TSS2_RC Receive(TSS2_TCTI_CONTEXT* c, size_t* size, uint8_t* response, int32_t timeout) {
  Context* ctx = Cast(c);
  if (ctx == nullptr || size == nullptr) return TSS2_TCTI_RC_BAD_CONTEXT;
  State& s = S();
  std::vector<uint8_t> resp;
  if (ctx->has_pending) {
    resp = ctx->pending;
  } else {
    // Always take the whole response from the inner TCTI, then hand it out the way
    // the caller asked (a size query with a null buffer, or the bytes).
    std::vector<uint8_t> buf(TPM2_MAX_COMMAND_SIZE);
    size_t n = buf.size();
    TSS2_RC rc = Tss2_Tcti_Receive(ctx->inner, &n, buf.data(), timeout);
    if (rc != TSS2_RC_SUCCESS) return rc;
    buf.resize(n);
    resp = std::move(buf);
    std::lock_guard<std::mutex> lock(s.mu);
    RewriteProperties(resp, s.properties);
    ctx->pending = resp;  // kept until the caller has taken it
    ctx->has_pending = true;
  }
  if (response == nullptr) {
    *size = resp.size();
    return TSS2_RC_SUCCESS;
  }
  if (*size < resp.size()) return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
  std::memcpy(response, resp.data(), resp.size());
  *size = resp.size();
  ctx->has_pending = false;
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.records.empty()) s.records.back().response = resp;
  return TSS2_RC_SUCCESS;
}

void Finalize(TSS2_TCTI_CONTEXT* c) {
  Context* ctx = Cast(c);
  if (ctx == nullptr) return;
  Tss2_TctiLdr_Finalize(&ctx->inner);
  ctx->common.v1.magic = 0;
  ctx->~Context();  // the loader frees the memory; the vector is ours to free
}

TSS2_RC Cancel(TSS2_TCTI_CONTEXT* c) {
  Context* ctx = Cast(c);
  return ctx == nullptr ? TSS2_TCTI_RC_BAD_CONTEXT : Tss2_Tcti_Cancel(ctx->inner);
}

TSS2_RC GetPollHandles(TSS2_TCTI_CONTEXT* c, TSS2_TCTI_POLL_HANDLE* handles, size_t* n) {
  Context* ctx = Cast(c);
  return ctx == nullptr ? TSS2_TCTI_RC_BAD_CONTEXT
                        : Tss2_Tcti_GetPollHandles(ctx->inner, handles, n);
}

TSS2_RC SetLocality(TSS2_TCTI_CONTEXT* c, uint8_t locality) {
  Context* ctx = Cast(c);
  return ctx == nullptr ? TSS2_TCTI_RC_BAD_CONTEXT : Tss2_Tcti_SetLocality(ctx->inner, locality);
}

TSS2_RC MakeSticky(TSS2_TCTI_CONTEXT* c, TPM2_HANDLE* handle, uint8_t sticky) {
  Context* ctx = Cast(c);
  return ctx == nullptr ? TSS2_TCTI_RC_BAD_CONTEXT
                        : Tss2_Tcti_MakeSticky(ctx->inner, handle, sticky);
}

TSS2_RC Init(TSS2_TCTI_CONTEXT* c, size_t* size, const char* config) {
  if (size == nullptr) return TSS2_TCTI_RC_BAD_VALUE;
  if (c == nullptr) {
    *size = sizeof(Context);
    return TSS2_RC_SUCCESS;
  }
  if (*size < sizeof(Context)) return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
  auto* ctx = new (c) Context{};
  TSS2_RC rc = Tss2_TctiLdr_Initialize(config, &ctx->inner);
  if (rc != TSS2_RC_SUCCESS) return rc;
  ctx->common.v1.magic = kMagic;
  ctx->common.v1.version = 2;
  ctx->common.v1.transmit = Transmit;
  ctx->common.v1.receive = Receive;
  ctx->common.v1.finalize = Finalize;
  ctx->common.v1.cancel = Cancel;
  ctx->common.v1.getPollHandles = GetPollHandles;
  ctx->common.v1.setLocality = SetLocality;
  ctx->common.makeSticky = MakeSticky;
  return TSS2_RC_SUCCESS;
}

const TSS2_TCTI_INFO kInfo = {2, "ms-tap", "records and injects faults for modelseal tests",
                              "the config of the TCTI to wrap", Init};

}  // namespace

extern "C" {

__attribute__((visibility("default"))) const TSS2_TCTI_INFO* Tss2_Tcti_Info(void) {
  return &kInfo;
}

__attribute__((visibility("default"))) void ms_tap_reset(void) {
  std::lock_guard<std::mutex> lock(S().mu);
  S().records.clear();
  S().rules.clear();
  S().properties.clear();
}

__attribute__((visibility("default"))) void ms_tap_fail(uint32_t command_code, uint32_t occurrence,
                                                        uint32_t rc) {
  std::lock_guard<std::mutex> lock(S().mu);
  S().rules.push_back({command_code, occurrence, rc});
}

__attribute__((visibility("default"))) void ms_tap_set_property(uint32_t property, uint32_t value) {
  std::lock_guard<std::mutex> lock(S().mu);
  S().properties.emplace_back(property, value);
}

__attribute__((visibility("default"))) size_t ms_tap_count(void) {
  std::lock_guard<std::mutex> lock(S().mu);
  return S().records.size();
}

// Copies record i into the caller's vectors; false when there is no such record.
__attribute__((visibility("default"))) bool ms_tap_record(size_t i, std::vector<uint8_t>* command,
                                                          std::vector<uint8_t>* response,
                                                          bool* injected) {
  std::lock_guard<std::mutex> lock(S().mu);
  if (i >= S().records.size()) return false;
  *command = S().records[i].command;
  *response = S().records[i].response;
  *injected = S().records[i].injected;
  return true;
}

}  // extern "C"
