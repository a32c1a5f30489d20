// The NSM messages of the NitroTPM attestation request (the transport is
// tpm/nitro.h). They stay here, beside the CBOR codec, rather than next to the
// transport: attest/ depends on tpm/, so tpm/ cannot use attest/'s CBOR.
//
// Both are what nitro-tpm-attest exchanges (aws-nitro-enclaves-nsm-api 0.5's
// Request and Response, serialized by ciborium):
//   request   {"Attestation": {"user_data": bstr/null, "nonce": bstr/null,
//              "public_key": bstr/null}}, fields in that order, definite lengths,
//              shortest-form heads -- byte for byte what the tool sends;
//   response  {"Attestation": {"document": bstr}}, or {"Error": "<ErrorCode>"} with
//              ErrorCode one of Success, InvalidArgument, InvalidIndex,
//              InvalidResponse, ReadOnlyIndex, InvalidOperation, BufferTooSmall,
//              InputTooLarge, InternalError. The NV index holds more bytes after
//              the item; they are ignored, as the tool reads only the item.
// The decoder is this project's strict one (cbor.h): shortest-form, definite-length
// CBOR only, which is what serde's CBOR encoders write; ciborium would also accept
// other well-formed encodings.
//
// Failure modes (module "attest"): "nsm-error" (kPermissionDenied) for an Error
// response, with a message that says what the error code means; "bad-nsm-response"
// (kIntegrity) for anything else that is not an Attestation with a document.
#pragma once

#include <span>

#include "attest/attest.h"

namespace modelseal::attest {

Bytes EncodeNsmAttestationRequest(const DocumentRequest& request);
Result<Bytes> DecodeNsmAttestationResponse(std::span<const uint8_t> nv_contents);

}  // namespace modelseal::attest
