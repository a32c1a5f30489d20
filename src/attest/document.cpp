// COSE_Sign1 envelope and attestation payload parsing (structure only).
#include <set>

#include "attest/attest.h"
#include "attest/cbor.h"
#include "attest/internal.h"

namespace modelseal::attest {

namespace {

constexpr size_t kMaxOptionalField = 1024;  // public_key, user_data, nonce
constexpr size_t kMaxCertificate = 4096;
constexpr size_t kMaxCabundle = 16;

Error Malformed(const std::string& what) {
  return MakeError(ErrorCode::kInvalidArgument, "attest", "document-malformed", what);
}

Result<Bytes> RequireBytes(const cbor::Value* v, const char* name, size_t min, size_t max) {
  if (v == nullptr) return Malformed(std::string("payload has no '") + name + "'");
  if (!v->is_bytes()) {
    return Malformed(std::string("'") + name + "' is a " + std::string(cbor::TypeName(v->type)) +
                     ", not a byte string");
  }
  if (v->bytes.size() < min || v->bytes.size() > max) {
    return Malformed(std::string("'") + name + "' has " + std::to_string(v->bytes.size()) +
                     " bytes, outside " + std::to_string(min) + ".." + std::to_string(max));
  }
  return v->bytes;
}

Result<std::optional<Bytes>> OptionalBytes(const cbor::Value* v, const char* name) {
  if (v == nullptr || v->is_null()) return std::optional<Bytes>();
  MS_ASSIGN_OR_RETURN(Bytes b, RequireBytes(v, name, 0, kMaxOptionalField));
  return std::optional<Bytes>(std::move(b));
}

Result<std::map<uint32_t, Bytes>> ParsePcrs(const cbor::Value& v, const char* name, bool nitrotpm) {
  if (!v.is_map()) return Malformed(std::string("'") + name + "' is not a map");
  if (v.map.empty()) return Malformed(std::string("'") + name + "' is empty");
  const uint64_t max_index = nitrotpm ? 23 : 31;
  std::map<uint32_t, Bytes> out;
  for (const auto& [k, val] : v.map) {
    if (!k.is_uint() || k.uint > max_index) {
      return Malformed(std::string("'") + name + "' has a key that is not a PCR index 0.." +
                       std::to_string(max_index));
    }
    if (!val.is_bytes()) {
      return Malformed("PCR" + std::to_string(k.uint) + " is not a byte string");
    }
    const size_t n = val.bytes.size();
    if (nitrotpm ? n != 48 : (n != 32 && n != 48 && n != 64)) {
      return Malformed("PCR" + std::to_string(k.uint) + " has " + std::to_string(n) +
                       " bytes, expected " + (nitrotpm ? "48" : "32, 48 or 64"));
    }
    if (!out.emplace(static_cast<uint32_t>(k.uint), val.bytes).second) {
      return Malformed("PCR" + std::to_string(k.uint) + " appears twice");
    }
  }
  return out;
}

}  // namespace

bool AttestationDocument::claims_development() const {
  return module_id.rfind(kDevModuleIdPrefix, 0) == 0;
}

Bytes CoseSigStructure(std::span<const uint8_t> protected_header,
                       std::span<const uint8_t> payload) {
  return cbor::Encode(cbor::Value::Array({
      cbor::Value::Tstr("Signature1"),
      cbor::Value::Bstr(Bytes(protected_header.begin(), protected_header.end())),
      cbor::Value::Bstr({}),
      cbor::Value::Bstr(Bytes(payload.begin(), payload.end())),
  }));
}

Result<AttestationDocument> ParsePayload(std::span<const uint8_t> payload) {
  MS_ASSIGN_OR_RETURN(cbor::Value m, cbor::Decode(payload));
  if (!m.is_map()) return Malformed("payload is not a map");
  static const std::set<std::string> kKnown = {
      "module_id",   "digest",   "timestamp",  "nitrotpm_pcrs", "pcrs",
      "certificate", "cabundle", "public_key", "user_data",     "nonce"};
  std::set<std::string> seen;
  for (const auto& [k, v] : m.map) {
    if (!k.is_text()) return Malformed("payload has a key that is not text");
    if (!kKnown.count(k.text)) return Malformed("payload has an unknown key '" + k.text + "'");
    if (!seen.insert(k.text).second) return Malformed("payload key '" + k.text + "' appears twice");
  }
  AttestationDocument d;
  const cbor::Value* v = m.Find("module_id");
  if (v == nullptr || !v->is_text() || v->text.empty() || v->text.size() > 256) {
    return Malformed("'module_id' must be a non-empty text string of at most 256 bytes");
  }
  d.module_id = v->text;
  v = m.Find("digest");
  if (v == nullptr || !v->is_text() || v->text != "SHA384") {
    return Malformed("'digest' must be the text \"SHA384\"");
  }
  d.digest = v->text;
  v = m.Find("timestamp");
  if (v == nullptr || !v->is_uint() || v->uint == 0) {
    return Malformed("'timestamp' must be a positive unsigned integer");
  }
  d.timestamp_ms = v->uint;
  const cbor::Value* tpm_pcrs = m.Find("nitrotpm_pcrs");
  const cbor::Value* enc_pcrs = m.Find("pcrs");
  if ((tpm_pcrs == nullptr) == (enc_pcrs == nullptr)) {
    return Malformed("payload must have exactly one of 'nitrotpm_pcrs' and 'pcrs'");
  }
  if (tpm_pcrs != nullptr) {
    d.kind = DocumentKind::kNitroTpm;
    MS_ASSIGN_OR_RETURN(d.pcrs, ParsePcrs(*tpm_pcrs, "nitrotpm_pcrs", true));
  } else {
    d.kind = DocumentKind::kNitroEnclave;
    MS_ASSIGN_OR_RETURN(d.pcrs, ParsePcrs(*enc_pcrs, "pcrs", false));
  }
  MS_ASSIGN_OR_RETURN(d.certificate,
                      RequireBytes(m.Find("certificate"), "certificate", 1, kMaxCertificate));
  v = m.Find("cabundle");
  if (v == nullptr || !v->is_array() || v->items.empty() || v->items.size() > kMaxCabundle) {
    return Malformed("'cabundle' must be an array of 1.." + std::to_string(kMaxCabundle) +
                     " certificates");
  }
  for (const auto& c : v->items) {
    MS_ASSIGN_OR_RETURN(Bytes der, RequireBytes(&c, "cabundle entry", 1, kMaxCertificate));
    d.cabundle.push_back(std::move(der));
  }
  MS_ASSIGN_OR_RETURN(d.public_key, OptionalBytes(m.Find("public_key"), "public_key"));
  MS_ASSIGN_OR_RETURN(d.user_data, OptionalBytes(m.Find("user_data"), "user_data"));
  MS_ASSIGN_OR_RETURN(d.nonce, OptionalBytes(m.Find("nonce"), "nonce"));
  return d;
}

Bytes EncodePayload(const AttestationDocument& d) {
  using cbor::Value;
  std::vector<cbor::MapEntry> pcrs;
  for (const auto& [i, b] : d.pcrs) pcrs.push_back({Value::Uint(i), Value::Bstr(b)});
  std::vector<Value> bundle;
  for (const auto& c : d.cabundle) bundle.push_back(Value::Bstr(c));
  auto opt = [](const std::optional<Bytes>& b) { return b ? Value::Bstr(*b) : Value::Null(); };
  return cbor::Encode(Value::Map({
      {Value::Tstr("module_id"), Value::Tstr(d.module_id)},
      {Value::Tstr("digest"), Value::Tstr(d.digest)},
      {Value::Tstr("timestamp"), Value::Uint(d.timestamp_ms)},
      {Value::Tstr(d.kind == DocumentKind::kNitroTpm ? "nitrotpm_pcrs" : "pcrs"),
       Value::Map(std::move(pcrs))},
      {Value::Tstr("certificate"), Value::Bstr(d.certificate)},
      {Value::Tstr("cabundle"), Value::Array(std::move(bundle))},
      {Value::Tstr("public_key"), opt(d.public_key)},
      {Value::Tstr("user_data"), opt(d.user_data)},
      {Value::Tstr("nonce"), opt(d.nonce)},
  }));
}

Bytes Es384ProtectedHeader() {
  return cbor::Encode(cbor::Value::Map({{cbor::Value::Uint(1), cbor::Value::Int(-35)}}));
}

Bytes EncodeCoseSign1(std::span<const uint8_t> protected_header, std::span<const uint8_t> payload,
                      std::span<const uint8_t> signature) {
  using cbor::Value;
  return cbor::Encode(Value::Array({
      Value::Bstr(Bytes(protected_header.begin(), protected_header.end())),
      Value::Map({}),
      Value::Bstr(Bytes(payload.begin(), payload.end())),
      Value::Bstr(Bytes(signature.begin(), signature.end())),
  }));
}

Result<ParsedDocument> ParseAttestationDocument(std::span<const uint8_t> data) {
  if (data.size() > kMaxDocumentBytes) {
    return Malformed("document is " + std::to_string(data.size()) + " bytes, more than " +
                     std::to_string(kMaxDocumentBytes));
  }
  MS_ASSIGN_OR_RETURN(cbor::Value top, cbor::Decode(data));
  const cbor::Value* arr = &top;
  if (top.type == cbor::Type::kTag) {
    if (top.uint != 18)
      return Malformed("tag " + std::to_string(top.uint) + " is not COSE_Sign1 (18)");
    arr = &top.items[0];
  }
  if (!arr->is_array() || arr->items.size() != 4) {
    return Malformed("COSE_Sign1 must be an array of 4 items");
  }
  const auto& it = arr->items;
  if (!it[0].is_bytes() || !it[1].is_map() || !it[2].is_bytes() || !it[3].is_bytes()) {
    return Malformed("COSE_Sign1 items must be [bstr, map, bstr, bstr]");
  }
  MS_ASSIGN_OR_RETURN(cbor::Value prot, cbor::Decode(it[0].bytes));
  const cbor::Value* alg = prot.FindInt(1);
  if (!prot.is_map() || prot.map.size() != 1 || alg == nullptr ||
      alg->type != cbor::Type::kNegInt || alg->uint != 34) {
    return Malformed("protected header must be exactly {1: -35} (ES384)");
  }
  if (!it[1].map.empty()) return Malformed("unprotected header must be empty");
  if (it[3].bytes.size() != 96) {
    return Malformed("signature has " + std::to_string(it[3].bytes.size()) +
                     " bytes, expected 96 (ES384 r||s)");
  }
  ParsedDocument p;
  p.protected_header = it[0].bytes;
  p.payload = it[2].bytes;
  p.signature = it[3].bytes;
  MS_ASSIGN_OR_RETURN(p.doc, ParsePayload(p.payload));
  return p;
}

}  // namespace modelseal::attest
