// Helpers shared by the product API's sources; not part of the public interface.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "pipeline/pipeline.h"
#include "server/jobs.h"

namespace modelseal::server::product {

Error BadRequest(const std::string& message);
// body[key] as a string; "" when absent and not required.
Result<std::string> Str(const nlohmann::json& body, const char* key, bool required);
Result<bool> Flag(const nlohmann::json& body, const char* key);
Result<int64_t> Int(const nlohmann::json& body, const char* key, int64_t lo, int64_t hi,
                    int64_t dflt);
nlohmann::json Accepted(const Job& job);

// The PCRs a request names: "pcrs": [4, 7] (this machine's current SHA-384 values)
// or {"4": "<96 hex>", "7": null} (given values; null for the current one).
Result<std::map<uint32_t, std::string>> PcrSelection(const nlohmann::json& body,
                                                     pipeline::Machine* machine);
nlohmann::json VerdictJson(const pipeline::ReleaseVerdict& v, const std::string& principal);

}  // namespace modelseal::server::product
