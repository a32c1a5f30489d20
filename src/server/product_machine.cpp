// Product API operations about the machine: attestation documents and their
// verification, PCRs, the PCR15 log. (Environment views: product_env.cpp.)
#include <unistd.h>

#include "attest/attest.h"
#include "common/bytes.h"
#include "common/ossl.h"
#include "server/product.h"
#include "server/product_internal.h"
#include "tpm/tpm.h"

namespace modelseal::server {

using nlohmann::json;
using namespace product;

namespace product {

Result<std::map<uint32_t, std::string>> PcrSelection(const json& body, pipeline::Machine* machine) {
  if (!body.is_object() || !body.contains("pcrs")) return BadRequest("pcrs is required");
  const json& sel = body["pcrs"];
  std::map<uint32_t, std::optional<std::string>> wanted;
  auto index = [](const json& v) -> Result<uint32_t> {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 23) {
      return BadRequest("PCR indexes are integers 0..23");
    }
    return static_cast<uint32_t>(v.get<uint64_t>());
  };
  if (sel.is_array()) {
    for (const auto& v : sel) {
      MS_ASSIGN_OR_RETURN(uint32_t i, index(v));
      wanted[i] = std::nullopt;
    }
  } else if (sel.is_object()) {
    for (const auto& [k, v] : sel.items()) {
      if (k.empty() || k.size() > 2 || k.find_first_not_of("0123456789") != std::string::npos) {
        return BadRequest("PCR indexes are integers 0..23, not '" + k + "'");
      }
      MS_ASSIGN_OR_RETURN(uint32_t i, index(json(std::stoul(k))));
      if (v.is_null()) {
        wanted[i] = std::nullopt;
      } else if (v.is_string()) {
        wanted[i] = v.get<std::string>();
      } else {
        return BadRequest("PCR " + k + ": a value is 96 hex digits or null (this machine's)");
      }
    }
  } else {
    return BadRequest("pcrs is a list of indexes or an object of index to value");
  }
  if (wanted.empty()) return BadRequest("pcrs names no PCR");
  std::map<uint32_t, Bytes> current;
  for (const auto& [i, v] : wanted) {
    if (v) continue;
    if (current.empty()) {
      MS_ASSIGN_OR_RETURN(auto all, machine->ReadAllPcrs());
      current = all[tpm::Bank::kSha384];
      if (current.empty()) return BadRequest("this TPM has no SHA-384 PCR bank");
    }
  }
  std::map<uint32_t, std::string> out;
  for (const auto& [i, v] : wanted) {
    const std::string hex = v ? *v : ToHex(current[i]);
    auto b = FromHex(hex);
    if (!b || b->size() != 48) {
      return BadRequest("PCR " + std::to_string(i) + " must be 96 hex digits (SHA-384)");
    }
    out[i] = ToHex(*b);
  }
  return out;
}

}  // namespace product

namespace {

json CertificateJson(std::span<const uint8_t> der) {
  auto info = attest::DescribeCertificate(der);
  if (!info.ok()) return {{"error", info.error().message}};
  return {{"subject", info->subject},
          {"issuer", info->issuer},
          {"not_before", attest::FormatTimeMs(info->not_before_ms)},
          {"not_after", attest::FormatTimeMs(info->not_after_ms)},
          {"sha256", info->sha256},
          {"key", info->key},
          {"is_ca", info->is_ca}};
}

json OptionalHex(const std::optional<Bytes>& b) {
  return b ? json(ToHex(*b)) : json(nullptr);
}

}  // namespace

namespace {

// The API's names for a check's outcome (machine-readable, unlike OutcomeName's).
const char* ApiOutcome(attest::CheckOutcome o) {
  switch (o) {
    case attest::CheckOutcome::kPassed:
      return "passed";
    case attest::CheckOutcome::kFailed:
      return "failed";
    case attest::CheckOutcome::kNotRun:
      return "not-run";
    case attest::CheckOutcome::kNotRequested:
      return "not-requested";
  }
  return "failed";
}

}  // namespace

ApiReply Product::Attestation(const ApiCall& c) {
  auto nonce_hex = Str(c.body, "nonce", false);
  if (!nonce_hex.ok()) return ErrorReply(nonce_hex.error());
  attest::DocumentRequest req;
  if (!nonce_hex->empty()) {
    auto n = FromHex(*nonce_hex);
    if (!n || n->empty() || n->size() > 512) {
      return ErrorReply(BadRequest("nonce must be 1 to 512 bytes of hex"));
    }
    req.nonce = *n;
  } else {
    Bytes n(32);
    if (auto s = RandomBytes(n.data(), n.size()); !s.ok()) return ErrorReply(s.error());
    req.nonce = n;
  }
  auto doc = env_.machine->Attest(req);
  if (!doc.ok()) return ErrorReply(doc.error());
  // Verified against the AWS root and, for a development document, the local
  // development root: the reply says which root the chain ended at.
  attest::VerifyOptions vo;
  if (auto aws = attest::AwsRoot(); aws.ok()) vo.roots.push_back(*aws);
  if (auto dev = attest::DevAuthority::Open(env_.machine->options().state_dir); dev.ok()) {
    vo.roots.push_back((*dev)->root());
  }
  vo.expected_nonce = req.nonce;
  const attest::VerificationReport rep = attest::VerifyAttestationDocument(doc->document, vo);
  json checks = json::array();
  for (const auto& ch : rep.checks) {
    checks.push_back(
        {{"name", ch.name}, {"outcome", ApiOutcome(ch.outcome)}, {"detail", ch.detail}});
  }
  json fields = nullptr, certificates = json::array();
  if (rep.document) {
    const auto& d = *rep.document;
    json pcrs = json::object();
    for (const auto& [i, v] : d.pcrs) pcrs[std::to_string(i)] = ToHex(v);
    fields = {{"module_id", d.module_id},
              {"digest", d.digest},
              {"timestamp", attest::FormatTimeMs(d.timestamp_ms)},
              {"timestamp_ms", d.timestamp_ms},
              {"pcrs", pcrs},
              {"public_key", OptionalHex(d.public_key)},
              {"user_data", OptionalHex(d.user_data)},
              {"nonce", OptionalHex(d.nonce)}};
    json leaf = CertificateJson(d.certificate);
    leaf["role"] = "leaf";
    certificates.push_back(leaf);
    for (size_t i = d.cabundle.size(); i-- > 0;) {
      json ca = CertificateJson(d.cabundle[i]);
      ca["role"] = i == 0 ? "root" : "intermediate";
      certificates.push_back(ca);
    }
  }
  return {200,
          {{"document", Base64Encode(doc->document)},
           {"source", doc->source},
           {"development", doc->development},
           {"note", doc->note},
           {"verified", rep.verified},
           {"root", rep.root_name},
           {"checks", checks},
           {"fields", fields},
           {"certificates", certificates}}};
}

ApiReply Product::Pcrs(const ApiCall&) {
  auto all = env_.machine->ReadAllPcrs();
  if (!all.ok()) return ErrorReply(all.error());
  json banks = json::object();
  for (const auto& [bank, pcrs] : *all) {
    json b = json::object();
    for (const auto& [i, v] : pcrs) b[std::to_string(i)] = ToHex(v);
    banks[tpm::BankName(bank)] = b;
  }
  return {200, {{"banks", banks}, {"highlighted", {4, 7, 12, 15}}}};
}

ApiReply Product::Pcr15Log(const ApiCall&) {
  auto log = env_.machine->Pcr15Log();
  if (!log.ok()) return ErrorReply(log.error());
  json entries = json::array();
  for (const auto& e : log->log.entries) {
    entries.push_back(
        {{"model", e.model_name},
         {"sha384", ToHex(e.sha384)},
         {"pcr15_after", ToHex(e.pcr15_after)},
         {"time", attest::FormatTimeMs(e.time_ms)},
         {"unloaded", e.unloaded_ms ? json(attest::FormatTimeMs(e.unloaded_ms)) : json(nullptr)}});
  }
  return {200,
          {{"entries", entries},
           {"replayed", ToHex(log->replayed)},
           {"live", ToHex(log->live)},
           {"matches", log->matches},
           {"boot",
            {{"reset_count", log->log.boot.reset_count},
             {"restart_count", log->log.boot.restart_count}}},
           {"discarded_earlier_boot", log->discarded_stale}}};
}

}  // namespace modelseal::server
