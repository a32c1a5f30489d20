#include "tpm/nitro.h"

#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tcti.h>

#include <algorithm>
#include <cstring>

#include "common/ossl.h"

namespace modelseal::tpm {

namespace {

constexpr uint32_t kRcCommandCode = 0x143;  // TPM_RC_COMMAND_CODE
constexpr uint32_t kRcNvDefined = 0x14c;    // TPM_RC_NV_DEFINED

Error NotNitro(const std::string& why) {
  return MakeError(ErrorCode::kUnsupported, "tpm", "not-nitrotpm",
                   "this TPM is not a NitroTPM: " + why);
}

Result<uint32_t> FixedProperty(Tpm& tpm, uint32_t prop) {
  TPMS_CAPABILITY_DATA* cap = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  TSS2_RC rc = Esys_GetCapability(tpm.esys(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_TPM_PROPERTIES, prop, 1, &more, &cap);
  if (rc != TSS2_RC_SUCCESS) return TssError("Esys_GetCapability", rc);
  uint32_t v = 0;
  if (cap->data.tpmProperties.count > 0 &&
      cap->data.tpmProperties.tpmProperty[0].property == prop) {
    v = cap->data.tpmProperties.tpmProperty[0].value;
  }
  Esys_Free(cap);
  return v;
}

Bytes Sha256Of(std::span<const uint8_t> d) {
  Bytes out(32);
  SHA256(d.data(), d.size(), out.data());
  return out;
}

Bytes HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  Bytes out(32);
  unsigned int len = 32;
  // An empty key is valid for HMAC; OpenSSL wants a non-null pointer.
  static const uint8_t kEmpty = 0;
  HMAC(EVP_sha256(), key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()), data.data(),
       data.size(), out.data(), &len);
  return out;
}

// The authValue as the TPM uses it in HMAC keys: trailing zero octets removed.
Bytes TrimmedAuth(std::span<const uint8_t> auth) {
  size_t n = auth.size();
  while (n > 0 && auth[n - 1] == 0) --n;
  return Bytes(auth.begin(), auth.begin() + n);
}

void PutTpm2b(Bytes& out, std::span<const uint8_t> b) {
  PutU16(out, static_cast<uint16_t>(b.size()));
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace

Result<uint32_t> NvIndexMax(Tpm& tpm) {
  return FixedProperty(tpm, TPM2_PT_NV_INDEX_MAX);
}

Bytes CommandParameterHash(const RawCommand& cmd) {
  Bytes buf;
  PutU32(buf, cmd.command_code);
  for (const auto& n : cmd.names) buf.insert(buf.end(), n.begin(), n.end());
  buf.insert(buf.end(), cmd.parameters.begin(), cmd.parameters.end());
  return Sha256Of(buf);
}

Bytes MarshalAuthorizedCommand(const RawCommand& cmd, uint32_t session_handle,
                               std::span<const uint8_t> nonce_caller,
                               std::span<const uint8_t> nonce_tpm, uint8_t session_attributes,
                               std::span<const uint8_t> auth_value) {
  Bytes hmac_in = CommandParameterHash(cmd);
  hmac_in.insert(hmac_in.end(), nonce_caller.begin(), nonce_caller.end());
  hmac_in.insert(hmac_in.end(), nonce_tpm.begin(), nonce_tpm.end());
  hmac_in.push_back(session_attributes);
  const Bytes hmac = HmacSha256(TrimmedAuth(auth_value), hmac_in);
  Bytes auth;
  PutU32(auth, session_handle);
  PutTpm2b(auth, nonce_caller);
  auth.push_back(session_attributes);
  PutTpm2b(auth, hmac);
  Bytes out;
  PutU16(out, TPM2_ST_SESSIONS);
  PutU32(out, 0);  // size, patched below
  PutU32(out, cmd.command_code);
  for (uint32_t h : cmd.handles) PutU32(out, h);
  PutU32(out, static_cast<uint32_t>(auth.size()));
  out.insert(out.end(), auth.begin(), auth.end());
  out.insert(out.end(), cmd.parameters.begin(), cmd.parameters.end());
  const uint32_t size = static_cast<uint32_t>(out.size());
  for (int i = 0; i < 4; ++i) out[2 + i] = static_cast<uint8_t>(size >> (24 - 8 * i));
  return out;
}

Result<std::unique_ptr<NvScratch>> NvScratch::Define(Tpm& tpm, size_t size) {
  ESYS_CONTEXT* ctx = tpm.esys();
  std::unique_ptr<NvScratch> s(new NvScratch(tpm));
  MS_ASSIGN_OR_RETURN(uint32_t buf_max, FixedProperty(tpm, TPM2_PT_NV_BUFFER_MAX));
  s->buffer_max_ = static_cast<uint16_t>(
      std::min<uint32_t>(buf_max ? buf_max : 512, sizeof(TPM2B_MAX_NV_BUFFER::buffer)));

  // 1. The endorsement key (TCG EK Credential Profile template L-2, ECC P-256).
  TPM2B_PUBLIC tmpl{};
  tmpl.publicArea.type = TPM2_ALG_ECC;
  tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
  tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                     TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                                     TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  static const uint8_t kEkPolicy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8,
                                        0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
                                        0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64,
                                        0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
  tmpl.publicArea.authPolicy.size = 32;
  std::memcpy(tmpl.publicArea.authPolicy.buffer, kEkPolicy, 32);
  auto& ecc = tmpl.publicArea.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_AES;
  ecc.symmetric.keyBits.aes = 128;
  ecc.symmetric.mode.aes = TPM2_ALG_CFB;
  ecc.scheme.scheme = TPM2_ALG_NULL;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  tmpl.publicArea.unique.ecc.x.size = 32;
  tmpl.publicArea.unique.ecc.y.size = 32;
  TPM2B_SENSITIVE_CREATE sens{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  ESYS_TR ek = ESYS_TR_NONE;
  TSS2_RC rc =
      Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         &sens, &tmpl, &outside, &pcrs, &ek, nullptr, nullptr, nullptr, nullptr);
  if (rc != TSS2_RC_SUCCESS) return TssError("create the endorsement key", rc);
  s->esys_ek_ = ek;

  // 2. An HMAC session salted with the EK, encrypting the first parameter.
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  ESYS_TR session = ESYS_TR_NONE;
  rc = Esys_StartAuthSession(ctx, ek, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                             nullptr, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return TssError("start a session salted with the EK", rc);
  s->esys_session_ = session;
  rc = Esys_TRSess_SetAttributes(
      ctx, session, TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT,
      0xff);
  if (rc != TSS2_RC_SUCCESS) return TssError("set session attributes", rc);

  // 3. The NV index: random auth value (last octet non-zero, see TrimmedAuth).
  s->auth_.resize(32);
  MS_RETURN_IF_ERROR(RandomBytes(s->auth_.data(), s->auth_.size()));
  s->auth_.back() |= 1;
  TPM2B_AUTH auth{};
  auth.size = 32;
  std::memcpy(auth.buffer, s->auth_.data(), 32);
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint8_t r[4];
    MS_RETURN_IF_ERROR(RandomBytes(r, sizeof(r)));
    const uint32_t index = 0x01000000u | ((GetU32(r) % 0x3ff000u) + 0x800u);
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = index;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA512;
    pub.nvPublic.attributes =
        TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE | (TPM2_NT_ORDINARY << TPMA_NV_TPM2_NT_SHIFT);
    pub.nvPublic.dataSize = static_cast<uint16_t>(size);
    ESYS_TR nv = ESYS_TR_NONE;
    rc = Esys_NV_DefineSpace(ctx, ESYS_TR_RH_OWNER, session, ESYS_TR_NONE, ESYS_TR_NONE, &auth,
                             &pub, &nv);
    if ((rc & 0xfff) == kRcNvDefined) continue;
    if (rc != TSS2_RC_SUCCESS) {
      return TssError("define a " + std::to_string(size) + "-byte owner NV index", rc);
    }
    s->esys_nv_ = nv;
    s->nv_index_ = index;
    s->defined_ = true;
    break;
  }
  if (!s->defined_) return TssError("define an owner NV index (all tried indices in use)", rc);
  rc = Esys_TR_SetAuth(ctx, s->esys_nv_, &auth);
  if (rc != TSS2_RC_SUCCESS) return TssError("set the NV auth value", rc);
  return s;
}

Result<Bytes> NvScratch::name() {
  TPM2B_NAME* name = nullptr;
  TSS2_RC rc = Esys_TR_GetName(tpm_.esys(), esys_nv_, &name);
  if (rc != TSS2_RC_SUCCESS) return TssError("read the NV index name", rc);
  Bytes out(name->name, name->name + name->size);
  Esys_Free(name);
  return out;
}

Status NvScratch::Write(std::span<const uint8_t> data) {
  for (size_t off = 0; off < data.size(); off += buffer_max_) {
    TPM2B_MAX_NV_BUFFER buf{};
    buf.size = static_cast<uint16_t>(std::min<size_t>(buffer_max_, data.size() - off));
    std::memcpy(buf.buffer, data.data() + off, buf.size);
    TSS2_RC rc = Esys_NV_Write(tpm_.esys(), esys_nv_, esys_nv_, esys_session_, ESYS_TR_NONE,
                               ESYS_TR_NONE, &buf, static_cast<uint16_t>(off));
    if (rc != TSS2_RC_SUCCESS) return TssError("write the NV index", rc);
  }
  return Ok{};
}

Result<Bytes> NvScratch::Read(size_t size) {
  Bytes out;
  for (size_t off = 0; off < size; off += buffer_max_) {
    const uint16_t n = static_cast<uint16_t>(std::min<size_t>(buffer_max_, size - off));
    TPM2B_MAX_NV_BUFFER* buf = nullptr;
    TSS2_RC rc = Esys_NV_Read(tpm_.esys(), esys_nv_, esys_nv_, esys_session_, ESYS_TR_NONE,
                              ESYS_TR_NONE, n, static_cast<uint16_t>(off), &buf);
    if (rc != TSS2_RC_SUCCESS) return TssError("read the NV index", rc);
    out.insert(out.end(), buf->buffer, buf->buffer + buf->size);
    Esys_Free(buf);
  }
  return out;
}

Result<Bytes> NvScratch::SendAuthorized(const RawCommand& cmd, uint32_t* tpm_rc) {
  *tpm_rc = 0;
  ESYS_CONTEXT* ctx = tpm_.esys();
  TPMT_SYM_DEF none{};
  none.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc =
      Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            ESYS_TR_NONE, nullptr, TPM2_SE_HMAC, &none, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return TssError("start an HMAC session", rc);
  struct Flush {
    ESYS_CONTEXT* c;
    ESYS_TR s;
    ~Flush() { Esys_FlushContext(c, s); }
  } flush{ctx, session};
  TPM2B_NONCE* nonce_tpm = nullptr;
  rc = Esys_TRSess_GetNonceTPM(ctx, session, &nonce_tpm);
  if (rc != TSS2_RC_SUCCESS) return TssError("read the session nonce", rc);
  const Bytes tpm_nonce(nonce_tpm->buffer, nonce_tpm->buffer + nonce_tpm->size);
  Esys_Free(nonce_tpm);
  TPM2_HANDLE session_handle = 0;
  rc = Esys_TR_GetTpmHandle(ctx, session, &session_handle);
  if (rc != TSS2_RC_SUCCESS) return TssError("read the session handle", rc);
  Bytes caller(32);
  MS_RETURN_IF_ERROR(RandomBytes(caller.data(), caller.size()));
  const uint8_t attrs = TPMA_SESSION_CONTINUESESSION;
  const Bytes wire = MarshalAuthorizedCommand(cmd, session_handle, caller, tpm_nonce, attrs, auth_);

  auto* tcti = static_cast<TSS2_TCTI_CONTEXT*>(tpm_.tcti_context());
  rc = Tss2_Tcti_Transmit(tcti, wire.size(), wire.data());
  if (rc != TSS2_RC_SUCCESS) return TssError("send a raw command", rc);
  Bytes resp(16384);
  size_t resp_size = resp.size();
  rc = Tss2_Tcti_Receive(tcti, &resp_size, resp.data(), TSS2_TCTI_TIMEOUT_BLOCK);
  if (rc != TSS2_RC_SUCCESS) return TssError("receive the response", rc);
  resp.resize(resp_size);
  auto malformed = [](const std::string& w) {
    return MakeError(ErrorCode::kIntegrity, "tpm", "bad-response", "TPM response " + w);
  };
  if (resp.size() < 10) return malformed("shorter than its header");
  const uint16_t tag = GetU16(resp.data());
  const uint32_t size = GetU32(resp.data() + 2);
  const uint32_t code = GetU32(resp.data() + 6);
  if (size != resp.size()) return malformed("size field disagrees with its length");
  if (code != 0) {
    *tpm_rc = code;
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%x", code);
    return MakeError(
        ErrorCode::kPermissionDenied, "tpm", "tpm-rc",
        std::string("the TPM answered ") + hex + " (" + TssError("", code).message + ")");
  }
  if (tag != TPM2_ST_SESSIONS || resp.size() < 14) return malformed("has no session area");
  const uint32_t psize = GetU32(resp.data() + 10);
  if (psize > resp.size() - 14) return malformed("parameter size out of range");
  const Bytes params(resp.begin() + 14, resp.begin() + 14 + psize);
  size_t p = 14 + psize;
  auto take2b = [&](Bytes* out) {
    if (resp.size() - p < 2) return false;
    const uint16_t n = GetU16(resp.data() + p);
    if (resp.size() - p - 2 < n) return false;
    out->assign(resp.begin() + p + 2, resp.begin() + p + 2 + n);
    p += 2 + n;
    return true;
  };
  Bytes new_nonce, hmac;
  if (!take2b(&new_nonce) || p >= resp.size()) return malformed("auth area truncated");
  const uint8_t rattrs = resp[p++];
  if (!take2b(&hmac) || p != resp.size()) return malformed("auth area malformed");
  Bytes rp;
  PutU32(rp, 0);
  PutU32(rp, cmd.command_code);
  rp.insert(rp.end(), params.begin(), params.end());
  Bytes hin = Sha256Of(rp);
  hin.insert(hin.end(), new_nonce.begin(), new_nonce.end());
  hin.insert(hin.end(), caller.begin(), caller.end());
  hin.push_back(rattrs);
  if (HmacSha256(TrimmedAuth(auth_), hin) != hmac) {
    return MakeError(ErrorCode::kIntegrity, "tpm", "response-hmac-mismatch",
                     "the TPM response HMAC does not verify: the response was altered");
  }
  return params;
}

Status NvScratch::Undefine() {
  ESYS_CONTEXT* ctx = tpm_.esys();
  Status st = Ok{};
  if (defined_) {
    TSS2_RC rc = Esys_NV_UndefineSpace(ctx, ESYS_TR_RH_OWNER, esys_nv_, esys_session_, ESYS_TR_NONE,
                                       ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) {
      st = TssError("undefine the NV index", rc);
    } else {
      defined_ = false;
    }
  }
  if (esys_session_ != 0 && esys_session_ != ESYS_TR_NONE) Esys_FlushContext(ctx, esys_session_);
  if (esys_ek_ != 0 && esys_ek_ != ESYS_TR_NONE) Esys_FlushContext(ctx, esys_ek_);
  esys_session_ = 0;
  esys_ek_ = 0;
  return st;
}

NvScratch::~NvScratch() {
  (void)Undefine();
}

Result<Bytes> NitroTpmExchange(Tpm& tpm, std::span<const uint8_t> request,
                               const NitroOptions& options) {
  if (request.size() > options.nv_size) {
    return MakeError(ErrorCode::kInvalidArgument, "tpm", "request-too-large",
                     "the NSM request is larger than the NV index");
  }
  MS_ASSIGN_OR_RETURN(uint32_t nv_max, NvIndexMax(tpm));
  if (nv_max < options.nv_size) {
    return NotNitro("its largest NV index is " + std::to_string(nv_max) + " bytes, below the " +
                    std::to_string(options.nv_size) + " the NitroTPM flow uses");
  }
  MS_ASSIGN_OR_RETURN(auto nv, NvScratch::Define(tpm, options.nv_size));
  MS_RETURN_IF_ERROR(nv->Write(request));
  RawCommand cmd;
  cmd.command_code = kNitroTpmVendorCommand;
  cmd.handles = {nv->handle(), nv->handle()};
  MS_ASSIGN_OR_RETURN(Bytes name, nv->name());
  cmd.names = {name, name};
  uint32_t rc = 0;
  auto sent = nv->SendAuthorized(cmd, &rc);
  if (!sent.ok()) {
    if ((rc & 0xfff) == kRcCommandCode) {
      return NotNitro("it rejected vendor command 0x20000001 (TPM_RC_COMMAND_CODE)");
    }
    return sent.take_error();
  }
  MS_ASSIGN_OR_RETURN(Bytes response, nv->Read(options.nv_size));
  MS_RETURN_IF_ERROR(nv->Undefine());
  return response;
}

}  // namespace modelseal::tpm
