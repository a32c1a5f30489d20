// Key policies for model keys: the starting policy and attested statements.
#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "kms/policy.h"
#include "pipeline/internal.h"
#include "pipeline/pipeline.h"

namespace modelseal::pipeline {

using nlohmann::json;

std::string ModelKeyPolicy(const std::string& owner_arn, const std::string& consumer_arn) {
  json statements = json::array();
  statements.push_back({{"Sid", "OwnerAdministers"},
                        {"Effect", "Allow"},
                        {"Principal", {{"AWS", owner_arn}}},
                        {"Action", "kms:*"},
                        {"Resource", "*"}});
  if (!consumer_arn.empty()) {
    statements.push_back({{"Sid", "ConsumerReadsKey"},
                          {"Effect", "Allow"},
                          {"Principal", {{"AWS", consumer_arn}}},
                          {"Action", json::array({"kms:DescribeKey", "kms:GetKeyPolicy"})},
                          {"Resource", "*"}});
    statements.push_back(
        {{"Sid", "DenyDecryptWithoutAttestation"},
         {"Effect", "Deny"},
         {"Principal", {{"AWS", consumer_arn}}},
         {"Action", "kms:Decrypt"},
         {"Resource", "*"},
         {"Condition", {{"Null", {{"kms:RecipientAttestation:NitroTPMPCR4", "true"}}}}}});
  }
  return json({{"Version", "2012-10-17"}, {"Id", "modelseal-model-key"}, {"Statement", statements}})
      .dump(2);
}

Result<std::string> AllowAttested(const std::string& policy_json, const std::string& principal,
                                  const std::map<uint32_t, std::string>& pcrs,
                                  const std::string& sid) {
  if (pcrs.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "no-pcrs",
                "an attested statement needs at least one PCR condition");
  }
  if (principal.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "no-principal",
                "an attested statement needs the consumer's principal ARN");
  }
  MS_ASSIGN_OR_RETURN(kms::Policy policy, kms::ParsePolicy(policy_json));
  kms::Statement st;
  st.sid = sid;
  st.allow = true;
  st.principals = {principal};
  st.actions = {"kms:Decrypt"};
  st.resources = {"*"};
  for (const auto& [index, hex] : pcrs) {
    auto bytes = FromHex(hex);
    if (index > 23 || !bytes || bytes->size() != 48) {
      return Fail(ErrorCode::kInvalidArgument, "bad-pcr",
                  "PCR " + std::to_string(index) + " must be 96 hex digits (SHA-384)");
    }
    kms::Condition c;
    c.op = c.base_op = "StringEqualsIgnoreCase";
    c.key = "kms:RecipientAttestation:NitroTPMPCR" + std::to_string(index);
    c.values = {ToHex(*bytes)};
    st.conditions.push_back(std::move(c));
  }
  // A statement with the same Sid is replaced; every other statement is kept.
  std::erase_if(policy.statements, [&](const kms::Statement& s) { return s.sid == sid; });
  policy.statements.push_back(std::move(st));
  return kms::PolicyToJson(policy);
}

}  // namespace modelseal::pipeline
