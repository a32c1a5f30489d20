#include "kms/master_seal.h"

#include <openssl/crypto.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "tpm/tpm.h"

namespace modelseal::kms {

using nlohmann::json;

namespace {

Error SealError(const std::string& reason, const std::string& what, TSS2_RC rc) {
  const Error e = tpm::TssError(what, rc);
  return MakeError(e.code, "kms", reason, e.message);
}

// Flushes a transient object or session when it goes out of scope.
struct Flush {
  ESYS_CONTEXT* ctx;
  ESYS_TR handle = ESYS_TR_NONE;
  ~Flush() {
    if (handle != ESYS_TR_NONE) Esys_FlushContext(ctx, handle);
  }
};

// The storage primary key (SRK template, TCG EK Credential Profile / tpm2-tools
// default "owner" primary): ECC P-256, AES-128-CFB, restricted decrypt.
Result<ESYS_TR> CreateSrk(ESYS_CONTEXT* ctx) {
  TPM2B_PUBLIC tmpl{};
  tmpl.publicArea.type = TPM2_ALG_ECC;
  tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
  tmpl.publicArea.objectAttributes =
      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
      TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  auto& ecc = tmpl.publicArea.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_AES;
  ecc.symmetric.keyBits.aes = 128;
  ecc.symmetric.mode.aes = TPM2_ALG_CFB;
  ecc.scheme.scheme = TPM2_ALG_NULL;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  TPM2B_SENSITIVE_CREATE sens{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION none{};
  ESYS_TR srk = ESYS_TR_NONE;
  const TSS2_RC rc =
      Esys_CreatePrimary(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                         &tmpl, &outside, &none, &srk, nullptr, nullptr, nullptr, nullptr);
  if (rc != TSS2_RC_SUCCESS) return SealError("tpm-seal", "create the storage primary key", rc);
  return srk;
}

TPML_PCR_SELECTION Selection(const std::vector<uint32_t>& pcrs) {
  TPML_PCR_SELECTION sel{};
  if (pcrs.empty()) return sel;
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (uint32_t p : pcrs)
    sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
  return sel;
}

// A session salted with the SRK that encrypts the first parameter both ways.
Result<ESYS_TR> StartSession(ESYS_CONTEXT* ctx, ESYS_TR srk, TPM2_SE type) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(ctx, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, type, &sym, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return SealError("tpm-seal", "start a salted session", rc);
  if (type != TPM2_SE_TRIAL) {
    rc = Esys_TRSess_SetAttributes(
        ctx, session, TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT,
        0xff);
    if (rc != TSS2_RC_SUCCESS) return SealError("tpm-seal", "set session attributes", rc);
  }
  return session;
}

Status PolicyPcr(ESYS_CONTEXT* ctx, ESYS_TR session, const std::vector<uint32_t>& pcrs,
                 const char* reason) {
  TPM2B_DIGEST empty{};  // the TPM uses the PCRs' current values
  const TPML_PCR_SELECTION sel = Selection(pcrs);
  const TSS2_RC rc =
      Esys_PolicyPCR(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel);
  if (rc != TSS2_RC_SUCCESS) return SealError(reason, "PolicyPCR", rc);
  return Ok{};
}

template <typename T, TSS2_RC (*Marshal)(const T*, uint8_t*, size_t, size_t*)>
Bytes MarshalTo(const T& v) {
  Bytes out(sizeof(T) + 16);
  size_t off = 0;
  if (Marshal(&v, out.data(), out.size(), &off) != TSS2_RC_SUCCESS) return {};
  out.resize(off);
  return out;
}

}  // namespace

Result<Bytes> SealMasterKey(const SecretBuffer& key, const SealOptions& options) {
  for (uint32_t p : options.sha256_pcrs) {
    if (p > 23) {
      return MakeError(ErrorCode::kInvalidArgument, "kms", "tpm-seal",
                       "PCR " + std::to_string(p) + " is out of range (0-23)");
    }
  }
  if (key.size() == 0 || key.size() > 128) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", "tpm-seal", "bad master key size");
  }
  MS_ASSIGN_OR_RETURN(auto tpm, tpm::Tpm::Open({options.tcti}));
  ESYS_CONTEXT* ctx = tpm->esys();
  MS_ASSIGN_OR_RETURN(ESYS_TR srk_handle, CreateSrk(ctx));
  Flush srk{ctx, srk_handle};

  TPM2B_PUBLIC tmpl{};
  tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
  tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
  tmpl.publicArea.objectAttributes =
      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
  tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
  if (options.sha256_pcrs.empty()) {
    tmpl.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
  } else {
    MS_ASSIGN_OR_RETURN(ESYS_TR trial_handle, StartSession(ctx, srk.handle, TPM2_SE_TRIAL));
    Flush trial{ctx, trial_handle};
    MS_RETURN_IF_ERROR(PolicyPcr(ctx, trial.handle, options.sha256_pcrs, "tpm-seal"));
    TPM2B_DIGEST* digest = nullptr;
    const TSS2_RC rc =
        Esys_PolicyGetDigest(ctx, trial.handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest);
    if (rc != TSS2_RC_SUCCESS) return SealError("tpm-seal", "PolicyGetDigest", rc);
    tmpl.publicArea.authPolicy = *digest;
    Esys_Free(digest);
  }
  TPM2B_SENSITIVE_CREATE sens{};
  sens.sensitive.data.size = static_cast<uint16_t>(key.size());
  std::memcpy(sens.sensitive.data.buffer, key.data(), key.size());
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION none{};
  TPM2B_PRIVATE* priv = nullptr;
  TPM2B_PUBLIC* pub = nullptr;
  MS_ASSIGN_OR_RETURN(ESYS_TR session_handle, StartSession(ctx, srk.handle, TPM2_SE_HMAC));
  Flush session{ctx, session_handle};
  const TSS2_RC rc = Esys_Create(ctx, srk.handle, session.handle, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                                 &tmpl, &outside, &none, &priv, &pub, nullptr, nullptr, nullptr);
  OPENSSL_cleanse(&sens, sizeof(sens));
  if (rc != TSS2_RC_SUCCESS) return SealError("tpm-seal", "create the sealed object", rc);
  const Bytes pub_bytes = MarshalTo<TPM2B_PUBLIC, Tss2_MU_TPM2B_PUBLIC_Marshal>(*pub);
  const Bytes priv_bytes = MarshalTo<TPM2B_PRIVATE, Tss2_MU_TPM2B_PRIVATE_Marshal>(*priv);
  Esys_Free(pub);
  Esys_Free(priv);
  if (pub_bytes.empty() || priv_bytes.empty()) {
    return MakeError(ErrorCode::kInternal, "kms", "tpm-seal", "cannot encode the sealed object");
  }
  const json doc = {{"version", 1},
                    {"sha256_pcrs", options.sha256_pcrs},
                    {"public", ToHex(pub_bytes)},
                    {"private", ToHex(priv_bytes)}};
  const std::string text = doc.dump(1) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<SecretBuffer> UnsealMasterKey(std::span<const uint8_t> sealed, const std::string& tcti) {
  const json doc = json::parse(sealed.begin(), sealed.end(), nullptr, false);
  auto bad = [] {
    return MakeError(ErrorCode::kIntegrity, "kms", "bad-sealed-key",
                     "master.sealed is not a sealed master key");
  };
  if (doc.is_discarded() || !doc.is_object() || doc.value("version", 0) != 1 ||
      !doc.contains("public") || !doc["public"].is_string() || !doc.contains("private") ||
      !doc["private"].is_string() || !doc.contains("sha256_pcrs") ||
      !doc["sha256_pcrs"].is_array()) {
    return bad();
  }
  std::vector<uint32_t> pcrs;
  for (const auto& p : doc["sha256_pcrs"]) {
    if (!p.is_number_unsigned() || p.get<uint32_t>() > 23) return bad();
    pcrs.push_back(p.get<uint32_t>());
  }
  const auto pub_bytes = FromHex(doc["public"].get<std::string>());
  const auto priv_bytes = FromHex(doc["private"].get<std::string>());
  if (!pub_bytes || !priv_bytes) return bad();
  TPM2B_PUBLIC pub{};
  TPM2B_PRIVATE priv{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub_bytes->data(), pub_bytes->size(), &off, &pub) !=
          TSS2_RC_SUCCESS ||
      off != pub_bytes->size()) {
    return bad();
  }
  off = 0;
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv_bytes->data(), priv_bytes->size(), &off, &priv) !=
          TSS2_RC_SUCCESS ||
      off != priv_bytes->size()) {
    return bad();
  }
  MS_ASSIGN_OR_RETURN(auto tpm, tpm::Tpm::Open({tcti}));
  ESYS_CONTEXT* ctx = tpm->esys();
  MS_ASSIGN_OR_RETURN(ESYS_TR srk_handle, CreateSrk(ctx));
  Flush srk{ctx, srk_handle};
  ESYS_TR obj_handle = ESYS_TR_NONE;
  TSS2_RC rc = Esys_Load(ctx, srk.handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub,
                         &obj_handle);
  if (rc != TSS2_RC_SUCCESS) {
    return SealError("tpm-unseal", "load the sealed master key (another TPM, or cleared?)", rc);
  }
  Flush obj{ctx, obj_handle};
  MS_ASSIGN_OR_RETURN(ESYS_TR session_handle,
                      StartSession(ctx, srk.handle, pcrs.empty() ? TPM2_SE_HMAC : TPM2_SE_POLICY));
  Flush session{ctx, session_handle};
  if (!pcrs.empty()) MS_RETURN_IF_ERROR(PolicyPcr(ctx, session.handle, pcrs, "tpm-unseal"));
  TPM2B_SENSITIVE_DATA* data = nullptr;
  rc = Esys_Unseal(ctx, obj.handle, session.handle, ESYS_TR_NONE, ESYS_TR_NONE, &data);
  if (rc != TSS2_RC_SUCCESS) {
    return SealError("tpm-unseal",
                     pcrs.empty() ? "unseal the master key"
                                  : "unseal the master key (have the sealed PCRs changed?)",
                     rc);
  }
  SecretBuffer out(data->buffer, data->size);
  OPENSSL_cleanse(data->buffer, data->size);
  Esys_Free(data);
  return out;
}

}  // namespace modelseal::kms
