#include "attest/nsm.h"

#include <string_view>

#include "attest/cbor.h"

namespace modelseal::attest {

namespace {

// What each NSM ErrorCode means for an attestation request.
std::string ExplainNsmError(std::string_view code) {
  if (code == "InvalidArgument") {
    return "it found the request's arguments invalid (user_data, nonce and public_key are "
           "at most 1024 bytes each)";
  }
  if (code == "InputTooLarge") return "the request is too large";
  if (code == "BufferTooSmall") {
    return "the attestation document does not fit the 8192-byte message buffer";
  }
  if (code == "InvalidOperation") return "it cannot produce attestation documents here";
  if (code == "InvalidResponse") return "it lost track of the request (InvalidResponse)";
  if (code == "InvalidIndex" || code == "ReadOnlyIndex") {
    return "it answered with a PCR error (" + std::string(code) +
           ") to a request that names no PCR";
  }
  if (code == "InternalError") return "it failed internally; try again";
  if (code == "Success") return "it answered Error with the code Success";
  return "it answered with an error code this version does not know";
}

}  // namespace

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
  if (!v->is_map() || v->map.size() != 1) return bad("not a map with one entry");
  if (const cbor::Value* err = v->Find("Error")) {
    if (!err->is_text()) return bad("Error is not a text string");
    return MakeError(ErrorCode::kPermissionDenied, "attest", "nsm-error",
                     "the NitroTPM refused the attestation request: " + ExplainNsmError(err->text) +
                         " (NSM error " + err->text + ")");
  }
  const cbor::Value* att = v->Find("Attestation");
  const cbor::Value* doc = att ? att->Find("document") : nullptr;
  if (doc == nullptr || !doc->is_bytes() || doc->bytes.empty()) {
    return bad("no Attestation.document byte string");
  }
  return doc->bytes;
}

}  // namespace modelseal::attest
