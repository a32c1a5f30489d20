#include "tpm/nitro.h"

#include <tss2/tss2_esys.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "common/ossl.h"
#include "common/secret.h"
#include "tpm/nitro_raw.h"

namespace modelseal::tpm {

namespace {

constexpr uint32_t kRcCommandCode = 0x143;    // TPM_RC_COMMAND_CODE
constexpr uint32_t kRcSize = 0x015;           // TPM_RC_SIZE (format-one base)
constexpr uint32_t kRcFmt1 = 0x080;           // format-one response codes
constexpr uint32_t kLayerMask = 0x00ff0000u;  // TSS2_RC_LAYER_MASK
constexpr size_t kAuthSize = 64;              // TPM2B_AUTH maximum (SHA-512 name algorithm)

// TCG EK Credential Profile 2.0, B.3.3: the policy of template L-1
// (PolicySecret(TPM_RH_ENDORSEMENT)).
constexpr uint8_t kEkPolicyA[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

Error NotNitro(const std::string& why) {
  return MakeError(ErrorCode::kUnsupported, "tpm", "not-nitrotpm",
                   "this TPM is not a NitroTPM: " + why);
}

// TCG EK Credential Profile 2.0, B.3.3, template L-1 (RSA 2048, AES-128): what
// tss-esapi's create_ek_public_from_default_template_2(Rsa2048) returns.
TPM2B_PUBLIC EkTemplateL1() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_RSA;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  p.authPolicy.size = sizeof(kEkPolicyA);
  std::memcpy(p.authPolicy.buffer, kEkPolicyA, sizeof(kEkPolicyA));
  p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
  p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
  p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.rsaDetail.keyBits = 2048;
  p.parameters.rsaDetail.exponent = 0;
  p.unique.rsa.size = 256;  // 256 zero octets
  return t;
}

// The state of one exchange: what exists in the TPM, so that Cleanup can remove
// exactly that, on every path.
class Exchange {
 public:
  Exchange(Tpm& tpm, size_t nv_size) : tpm_(tpm), ctx_(tpm.esys()), nv_size_(nv_size) {}
  ~Exchange() { (void)Cleanup(); }

  Result<Bytes> Run(std::span<const uint8_t> request);
  // Flushes what is loaded, undefines the index, evicts the EK. Idempotent.
  Status Cleanup();

 private:
  Result<uint32_t> FindFreeHandle(uint32_t first, uint32_t last, const char* what);
  Result<uint32_t> TpmProperty(uint32_t property, uint32_t count);
  // An HMAC session, salted with `tpm_key` unless it is ESYS_TR_NONE, with
  // AES-128-CFB parameter encryption and continueSession|decrypt|encrypt.
  Result<ESYS_TR> StartSession(ESYS_TR tpm_key, TPMI_ALG_HASH hash);
  void ForgetSalt();
  Status Flush(ESYS_TR* handle, const std::string& what);
  Status CreateEk();
  Status DefineAndWrite(std::span<const uint8_t> request);
  Status SendVendorCommand();
  Result<Bytes> ReadIndex();

  Tpm& tpm_;
  ESYS_CONTEXT* ctx_;
  const size_t nv_size_;
  ESYS_TR session_ = ESYS_TR_NONE;       // the ESAPI session now loaded, if any
  ESYS_TR ek_transient_ = ESYS_TR_NONE;  // the EK as CreatePrimary loaded it
  ESYS_TR ek_ = ESYS_TR_NONE;            // the persistent EK
  uint32_t ek_handle_ = 0;
  nitro::RsaPublicKey ek_public_;
  ESYS_TR nv_ = ESYS_TR_NONE;
  uint32_t nv_index_ = 0;
  SecretBuffer auth_;
  Bytes nv_name_;
  uint16_t buffer_max_ = 0;
};

Result<uint32_t> Exchange::FindFreeHandle(uint32_t first, uint32_t last, const char* what) {
  // What nitro-tpm-attest's find_free_handle asks: every handle in [first, last]
  // (count last - first + 1), then the first one not listed. A TPM that lists only
  // part of them (moreData) is asked again from after the last one listed.
  uint32_t from = first;
  uint32_t candidate = first;
  for (int round = 0; round < 64; ++round) {
    TPMS_CAPABILITY_DATA* cap = nullptr;
    TPMI_YES_NO more = TPM2_NO;
    TSS2_RC rc = Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_HANDLES, from, last - from + 1, &more, &cap);
    if (rc != TSS2_RC_SUCCESS) return TssError(std::string("list ") + what + " handles", rc);
    const TPML_HANDLE& list = cap->data.handles;
    bool gap = false;
    for (uint32_t i = 0; i < list.count && !gap; ++i) {
      if (list.handle[i] > candidate) {
        gap = true;
      } else if (list.handle[i] == candidate) {
        ++candidate;
      }
    }
    const bool listed_all = more != TPM2_YES || list.count == 0;
    const uint32_t last_listed = list.count > 0 ? list.handle[list.count - 1] : from;
    Esys_Free(cap);
    if (candidate > last) break;
    if (gap || listed_all) return candidate;
    from = last_listed + 1;
  }
  return MakeError(ErrorCode::kUnavailable, "tpm", "no-free-handle",
                   std::string("the TPM has no free ") + what + " handle");
}

Result<uint32_t> Exchange::TpmProperty(uint32_t property, uint32_t count) {
  TPMS_CAPABILITY_DATA* cap = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  TSS2_RC rc = Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_TPM_PROPERTIES, property, count, &more, &cap);
  if (rc != TSS2_RC_SUCCESS) return TssError("read TPM property " + Hex32(property), rc);
  uint32_t v = 0;
  for (uint32_t i = 0; i < cap->data.tpmProperties.count; ++i) {
    if (cap->data.tpmProperties.tpmProperty[i].property == property) {
      v = cap->data.tpmProperties.tpmProperty[i].value;
    }
  }
  Esys_Free(cap);
  return v;
}

Result<ESYS_TR> Exchange::StartSession(ESYS_TR tpm_key, TPMI_ALG_HASH hash) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  ESYS_TR s = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(ctx_, tpm_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, TPM2_SE_HMAC, &sym, hash, &s);
  if (rc != TSS2_RC_SUCCESS) {
    if (tpm_key != ESYS_TR_NONE) ForgetSalt();
    return TssError(tpm_key == ESYS_TR_NONE ? "start an HMAC session"
                                            : "start an HMAC session salted with the EK",
                    rc);
  }
  session_ = s;
  const TPMA_SESSION bits = TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT;
  rc = Esys_TRSess_SetAttributes(ctx_, s, bits, bits);
  if (rc != TSS2_RC_SUCCESS) return TssError("set the session attributes", rc);
  return s;
}

void Exchange::ForgetSalt() {
  // ESAPI (tpm2-tss 3.2.1 to 4.1 at least) keeps the salt of a salted
  // Esys_StartAuthSession that failed and mixes it into the key of the next session
  // it starts, salted or not, whose authorisations the TPM then refuses
  // (TPM_RC_BAD_AUTH). Any StartAuthSession that succeeds clears it: start one (its
  // key is wrong and unused) and flush it, so the removals that follow work.
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_NULL;
  ESYS_TR s = ESYS_TR_NONE;
  if (Esys_StartAuthSession(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            ESYS_TR_NONE, nullptr, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256,
                            &s) == TSS2_RC_SUCCESS) {
    Esys_FlushContext(ctx_, s);
  }
}

Status Exchange::Flush(ESYS_TR* handle, const std::string& what) {
  if (*handle == ESYS_TR_NONE) return Ok{};
  TSS2_RC rc = Esys_FlushContext(ctx_, *handle);
  // Even when the flush fails the ESAPI object is gone: do not try again.
  *handle = ESYS_TR_NONE;
  if (rc != TSS2_RC_SUCCESS) return TssError("flush " + what, rc);
  return Ok{};
}

Status Exchange::CreateEk() {
  MS_ASSIGN_OR_RETURN(ek_handle_,
                      FindFreeHandle(TPM2_PERSISTENT_FIRST, TPM2_PERSISTENT_LAST, "persistent"));
  MS_ASSIGN_OR_RETURN(ESYS_TR s, StartSession(ESYS_TR_NONE, TPM2_ALG_SHA256));
  const TPM2B_PUBLIC tmpl = EkTemplateL1();
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  TPM2B_PUBLIC* out_public = nullptr;
  TSS2_RC rc = Esys_CreatePrimary(ctx_, ESYS_TR_RH_ENDORSEMENT, s, ESYS_TR_NONE, ESYS_TR_NONE,
                                  &sensitive, &tmpl, &outside, &pcrs, &ek_transient_, &out_public,
                                  nullptr, nullptr, nullptr);
  if (rc != TSS2_RC_SUCCESS) return TssError("create the endorsement key", rc);
  const auto& rsa = out_public->publicArea.unique.rsa;
  ek_public_.modulus.assign(rsa.buffer, rsa.buffer + rsa.size);
  ek_public_.exponent = out_public->publicArea.parameters.rsaDetail.exponent;
  Esys_Free(out_public);
  ESYS_TR persistent = ESYS_TR_NONE;
  rc = Esys_EvictControl(ctx_, ESYS_TR_RH_OWNER, ek_transient_, s, ESYS_TR_NONE, ESYS_TR_NONE,
                         ek_handle_, &persistent);
  if (rc != TSS2_RC_SUCCESS) {
    return TssError("persist the endorsement key at " + Hex32(ek_handle_), rc);
  }
  ek_ = persistent;
  return Flush(&session_, "the HMAC session");
}

Status Exchange::DefineAndWrite(std::span<const uint8_t> request) {
  // A random auth value of the maximum size: 64 bytes, the SHA-512 digest size. (The
  // TPM drops an auth value's trailing zero octets and ESAPI does not; it makes no
  // difference here: session key and auth value together fill at most one SHA-512
  // block, and HMAC pads a shorter key with zeros.)
  auth_ = SecretBuffer(kAuthSize);
  MS_RETURN_IF_ERROR(RandomBytes(auth_.data(), auth_.size()));
  MS_ASSIGN_OR_RETURN(nv_index_,
                      FindFreeHandle(TPM2_NV_INDEX_FIRST, TPM2_NV_INDEX_LAST, "NV index"));
  MS_ASSIGN_OR_RETURN(ESYS_TR s, StartSession(ek_, TPM2_ALG_SHA512));
  TPM2B_AUTH auth{};
  auth.size = kAuthSize;
  std::memcpy(auth.buffer, auth_.data(), kAuthSize);
  TPM2B_NV_PUBLIC pub{};
  pub.nvPublic.nvIndex = nv_index_;
  pub.nvPublic.nameAlg = TPM2_ALG_SHA512;
  pub.nvPublic.attributes = TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE;  // TPM_NT_ORDINARY
  pub.nvPublic.dataSize = static_cast<uint16_t>(nv_size_);
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc =
      Esys_NV_DefineSpace(ctx_, ESYS_TR_RH_OWNER, s, ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pub, &nv);
  OPENSSL_cleanse(&auth, sizeof(auth));
  if (rc != TSS2_RC_SUCCESS) {
    if ((rc & kLayerMask) == 0 && (rc & kRcFmt1) != 0 && (rc & 0x3f) == kRcSize) {
      return NotNitro("it cannot hold a " + std::to_string(nv_size_) +
                      "-byte NV index (TPM2_NV_DefineSpace answered TPM_RC_SIZE)");
    }
    return TssError(
        "define a " + std::to_string(nv_size_) + "-byte owner NV index at " + Hex32(nv_index_), rc);
  }
  nv_ = nv;
  TPM2B_AUTH set{};
  set.size = kAuthSize;
  std::memcpy(set.buffer, auth_.data(), kAuthSize);
  rc = Esys_TR_SetAuth(ctx_, nv_, &set);
  OPENSSL_cleanse(&set, sizeof(set));
  if (rc != TSS2_RC_SUCCESS) return TssError("set the NV index auth value", rc);

  MS_ASSIGN_OR_RETURN(uint32_t buffer_max, TpmProperty(TPM2_PT_NV_BUFFER_MAX, 4));
  buffer_max_ = static_cast<uint16_t>(std::min<uint32_t>(
      buffer_max == 0 ? TPM2_MAX_NV_BUFFER_SIZE : buffer_max, TPM2_MAX_NV_BUFFER_SIZE));
  for (size_t off = 0; off < request.size(); off += buffer_max_) {
    TPM2B_MAX_NV_BUFFER buf{};
    buf.size = static_cast<uint16_t>(std::min<size_t>(buffer_max_, request.size() - off));
    std::memcpy(buf.buffer, request.data() + off, buf.size);
    rc = Esys_NV_Write(ctx_, nv_, nv_, s, ESYS_TR_NONE, ESYS_TR_NONE, &buf,
                       static_cast<uint16_t>(off));
    if (rc != TSS2_RC_SUCCESS) {
      return TssError("write the request into NV index " + Hex32(nv_index_) + " at offset " +
                          std::to_string(off),
                      rc);
    }
  }
  // The name as the TPM has it now (TPMA_NV_WRITTEN is part of it), for cpHash.
  TPM2B_NV_PUBLIC* now = nullptr;
  TPM2B_NAME* name = nullptr;
  rc = Esys_NV_ReadPublic(ctx_, nv_, s, ESYS_TR_NONE, ESYS_TR_NONE, &now, &name);
  if (rc != TSS2_RC_SUCCESS) return TssError("read the NV index name", rc);
  nv_name_.assign(name->name, name->name + name->size);
  Esys_Free(now);
  Esys_Free(name);
  MS_RETURN_IF_ERROR(Flush(&session_, "the EK-salted session"));
  return Flush(&ek_transient_, "the transient endorsement key");
}

Status Exchange::SendVendorCommand() {
  MS_ASSIGN_OR_RETURN(auto session, nitro::SaltedSession::Start(tpm_, ek_handle_, ek_public_));
  const uint32_t handles[2] = {nv_index_, nv_index_};
  auto resp = session.Send(nitro::kVendorCommand, handles, {nv_name_, nv_name_}, {}, auth_.span());
  Status flushed = session.Flush();
  if (!resp.ok()) return resp.take_error();
  const uint32_t rc = nitro::RcOf(*resp);
  if (rc == kRcCommandCode) {
    return NotNitro("it rejected vendor command 0x20000001 (TPM_RC_COMMAND_CODE)");
  }
  if ((rc & 0xffff) == kRcCommandCode && (rc & kLayerMask) != 0) {
    return NotNitro(
        "the resource manager behind TCTI '" + tpm_.tcti() + "' refused vendor command " +
        "0x20000001 (" + Hex32(rc) +
        "), so the TPM was never asked: Linux's /dev/tpmrm0 passes a vendor command only from "
        "kernel 6.3 on, and only one the TPM lists. A NitroTPM is reached through "
        "device:/dev/tpm0, the default");
  }
  if (rc != 0) {
    // Behind a resource manager the command may reach the TPM without its session
    // (tpm2-abrmd does not know the command's handles, so it does not load it).
    Error e = TssError("vendor command 0x20000001 (NSM request) through TCTI '" + tpm_.tcti() +
                           "'; nitro-tpm-attest sends it to /dev/tpm0 directly",
                       rc);
    e.code = ErrorCode::kPermissionDenied;
    e.reason = "vendor-command-failed";
    return e;
  }
  return flushed;
}

Result<Bytes> Exchange::ReadIndex() {
  MS_ASSIGN_OR_RETURN(ESYS_TR s, StartSession(ek_, TPM2_ALG_SHA512));
  Bytes out;
  out.reserve(nv_size_);
  for (size_t off = 0; off < nv_size_; off += buffer_max_) {
    const uint16_t n = static_cast<uint16_t>(std::min<size_t>(buffer_max_, nv_size_ - off));
    TPM2B_MAX_NV_BUFFER* buf = nullptr;
    TSS2_RC rc = Esys_NV_Read(ctx_, nv_, nv_, s, ESYS_TR_NONE, ESYS_TR_NONE, n,
                              static_cast<uint16_t>(off), &buf);
    if (rc != TSS2_RC_SUCCESS) {
      return TssError("read NV index " + Hex32(nv_index_) + " at offset " + std::to_string(off),
                      rc);
    }
    out.insert(out.end(), buf->buffer, buf->buffer + buf->size);
    Esys_Free(buf);
  }
  MS_RETURN_IF_ERROR(Flush(&session_, "the EK-salted session"));
  return out;
}

Status Exchange::Cleanup() {
  // Flushes first (they free TPM memory the removals may need), then the index,
  // then the EK, each removal under its own unsalted HMAC session.
  std::optional<Error> first;
  auto note = [&first](Status st) {
    if (!st.ok() && !first) first = st.error();
  };
  note(Flush(&session_, "a session"));
  note(Flush(&ek_transient_, "the transient endorsement key"));
  std::string left;
  if (nv_ != ESYS_TR_NONE) {
    auto s = StartSession(ESYS_TR_NONE, TPM2_ALG_SHA256);
    TSS2_RC rc =
        s.ok() ? Esys_NV_UndefineSpace(ctx_, ESYS_TR_RH_OWNER, nv_, *s, ESYS_TR_NONE, ESYS_TR_NONE)
               : TSS2_RC_SUCCESS;
    if (!s.ok() || rc != TSS2_RC_SUCCESS) {
      note(s.ok() ? Status(TssError("undefine NV index " + Hex32(nv_index_), rc))
                  : Status(s.error()));
      left += " NV index " + Hex32(nv_index_);
      Esys_TR_Close(ctx_, &nv_);
    }
    nv_ = ESYS_TR_NONE;
    note(Flush(&session_, "a session"));
  }
  if (ek_ != ESYS_TR_NONE) {
    auto s = StartSession(ESYS_TR_NONE, TPM2_ALG_SHA256);
    ESYS_TR none = ESYS_TR_NONE;
    TSS2_RC rc = s.ok() ? Esys_EvictControl(ctx_, ESYS_TR_RH_OWNER, ek_, *s, ESYS_TR_NONE,
                                            ESYS_TR_NONE, ek_handle_, &none)
                        : TSS2_RC_SUCCESS;
    if (!s.ok() || rc != TSS2_RC_SUCCESS) {
      note(s.ok() ? Status(TssError("evict the endorsement key at " + Hex32(ek_handle_), rc))
                  : Status(s.error()));
      left += " persistent EK " + Hex32(ek_handle_);
      Esys_TR_Close(ctx_, &ek_);
    }
    if (ek_ != ESYS_TR_NONE) Esys_TR_Close(ctx_, &ek_);  // ESAPI keeps it after an evict
    ek_ = ESYS_TR_NONE;
    note(Flush(&session_, "a session"));
  }
  if (!left.empty()) {
    return MakeError(ErrorCode::kInternal, "tpm", "cleanup-failed",
                     "could not remove what the NitroTPM request made; left in the TPM:" + left +
                         " (" + first->message + ")");
  }
  if (first) return *first;
  return Ok{};
}

Result<Bytes> Exchange::Run(std::span<const uint8_t> request) {
  if (request.size() > nv_size_) {
    return MakeError(ErrorCode::kInvalidArgument, "tpm", "request-too-large",
                     "the NSM request (" + std::to_string(request.size()) +
                         " bytes) is larger than the " + std::to_string(nv_size_) +
                         "-byte NV index");
  }
  MS_ASSIGN_OR_RETURN(uint32_t nv_max, TpmProperty(TPM2_PT_NV_INDEX_MAX, 1));
  if (nv_max < nv_size_) {
    return NotNitro("its NV indices hold at most " + std::to_string(nv_max) + " bytes, not the " +
                    std::to_string(nv_size_) + " the NitroTPM request uses");
  }
  MS_RETURN_IF_ERROR(CreateEk());
  MS_RETURN_IF_ERROR(DefineAndWrite(request));
  MS_RETURN_IF_ERROR(SendVendorCommand());
  MS_ASSIGN_OR_RETURN(Bytes response, ReadIndex());
  MS_RETURN_IF_ERROR(Cleanup());
  return response;
}

}  // namespace

Result<Bytes> NitroTpmExchange(Tpm& tpm, std::span<const uint8_t> request,
                               const NitroOptions& options) {
  Exchange exchange(tpm, options.nv_size);
  auto result = exchange.Run(request);
  Status cleanup = exchange.Cleanup();  // a no-op after a successful Run
  if (!cleanup.ok() && cleanup.error().reason == "cleanup-failed") {
    // Something is left in the TPM: that is the error to report, with its cause.
    Error e = cleanup.error();
    if (!result.ok()) e.message += "; the request had failed first: " + result.error().message;
    return e;
  }
  return result;
}

}  // namespace modelseal::tpm
