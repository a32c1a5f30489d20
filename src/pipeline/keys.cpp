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
  // The owner administers the key and makes data keys with it, but may not Decrypt:
  // the released key reaches attested machines only, whoever asks.
  statements.push_back({{"Sid", "OwnerAdministers"},
                        {"Effect", "Allow"},
                        {"Principal", {{"AWS", owner_arn}}},
                        {"NotAction", "kms:Decrypt"},
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
  MS_ASSIGN_OR_RETURN(kms::Policy policy, kms::ParsePolicy(policy_json));
  MS_ASSIGN_OR_RETURN(policy,
                      kms::WithAttestedStatement(std::move(policy), principal, {}, pcrs, sid));
  return kms::PolicyToJson(policy);
}

}  // namespace modelseal::pipeline
