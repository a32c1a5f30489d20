#include "attest/produce.h"

#include "attest/nsm.h"
#include "tpm/nitro.h"

namespace modelseal::attest {

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
