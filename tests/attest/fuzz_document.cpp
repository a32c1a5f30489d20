// libFuzzer target: the CBOR decoder, the COSE_Sign1/attestation document
// parser and the verifier must never crash, leak or hit undefined behaviour on
// any input, and what the decoder accepts must re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>

#include "attest/attest.h"
#include "attest/cbor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace modelseal::attest;
  const std::span<const uint8_t> in(data, size);
  auto v = cbor::Decode(in);
  if (v.ok()) {
    const auto again = cbor::Encode(*v);
    if (again.size() != size || !std::equal(again.begin(), again.end(), data)) __builtin_trap();
  }
  auto p = ParseAttestationDocument(in);
  if (p.ok() && p->doc.digest != "SHA384") __builtin_trap();
  VerifyOptions o;
  o.at_ms = 1663263864000ULL;
  o.expected_nonce = modelseal::Bytes{1, 2};
  o.max_age_ms = 1000;
  auto r = VerifyAttestationDocument(in, o);
  if (r.verified && !p.ok()) __builtin_trap();  // fail closed: unparsable never verifies
  return 0;
}
