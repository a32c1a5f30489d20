#include "attest/produce.h"

#include "attest/cbor.h"
#include "tpm/nitro.h"

namespace modelseal::attest {

Bytes EncodeNsmAttestationRequest(const DocumentRequest& r) {
  using cbor::Value;
  auto opt = [](const std::optional<Bytes>& b) { return b ? Value::Bstr(*b) : Value::Null(); };
  return cbor::Encode(Value::Map({{Value::Tstr("Attestation"),
                                   Value::Map({{Value::Tstr("user_data"), opt(r.user_data)},
                                               {Value::Tstr("nonce"), opt(r.nonce)},
                                               {Value::Tstr("public_key"), opt(r.public_key)}})}}));
}

Result<Bytes> DecodeNsmAttestationResponse(std::span<const uint8_t> nv_contents) {
  auto bad = [](const std::string& m) {
    return MakeError(ErrorCode::kIntegrity, "attest", "bad-nsm-response",
                     "NitroTPM response: " + m);
  };
  size_t used = 0;
  auto v = cbor::DecodePrefix(nv_contents, &used);
  if (!v.ok()) return bad(v.error().message);
  if (const cbor::Value* err = v->Find("Error")) {
    return MakeError(ErrorCode::kPermissionDenied, "attest", "nsm-error",
                     "the NitroTPM refused the attestation request: " +
                         (err->is_text() ? err->text : std::string("(non-text error)")));
  }
  const cbor::Value* att = v->Find("Attestation");
  const cbor::Value* doc = att ? att->Find("document") : nullptr;
  if (doc == nullptr || !doc->is_bytes() || doc->bytes.empty()) {
    return bad("no Attestation.document byte string");
  }
  return doc->bytes;
}

Result<AttestationResult> GetAttestationDocument(tpm::Tpm& tpm, const DocumentRequest& request,
                                                 const std::string& state_dir,
                                                 AttestSource source) {
  for (const auto* f : {&request.public_key, &request.user_data, &request.nonce}) {
    if (*f && (*f)->size() > 1024) {
      return MakeError(ErrorCode::kInvalidArgument, "attest", "bad-request",
                       "public_key, user_data and nonce are at most 1024 bytes each");
    }
  }
  AttestationResult out;
  if (source != AttestSource::kDevelopment) {
    auto nv = tpm::NitroTpmExchange(tpm, EncodeNsmAttestationRequest(request));
    if (nv.ok()) {
      MS_ASSIGN_OR_RETURN(out.document, DecodeNsmAttestationResponse(*nv));
      out.source = "nitrotpm";
      return out;
    }
    if (source == AttestSource::kNitroTpm || nv.error().reason != "not-nitrotpm") {
      return nv.take_error();
    }
    out.note = nv.error().message;
  }
  MS_ASSIGN_OR_RETURN(auto pcrs, tpm.ReadPcrs(tpm::Bank::kSha384));
  MS_ASSIGN_OR_RETURN(auto authority, DevAuthority::Open(state_dir));
  MS_ASSIGN_OR_RETURN(out.document, authority->Issue(pcrs, request));
  out.development = true;
  out.source = "development";
  return out;
}

}  // namespace modelseal::attest
