// Server internals shared by the API files; not part of the public interface.
#pragma once

#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/engine.h"
#include "server/peer.h"
#include "server/server.h"

namespace modelseal::server {

using nlohmann::json;

struct Api {
  engine::Engine* engine;
  ServerOptions options;
  PeerWatch* peers;  // cancels generations whose client hung up
};

void RegisterOllama(httplib::Server& http, Api& api);
void RegisterOpenAi(httplib::Server& http, Api& api);

// JSON text with invalid UTF-8 replaced (model output may hold anything).
std::string Dump(const json& j);
// Parses the request body as a JSON object; `error` gets a message when it is not.
bool ParseObject(const httplib::Request& req, json* out, std::string* error);
// "2026-11-25T20:00:00.123456Z"
std::string Rfc3339(std::chrono::system_clock::time_point t);
int64_t UnixSeconds(std::chrono::system_clock::time_point t);
// 1234567 -> "1.2M"
std::string ParameterSize(uint64_t n);
// The modelseal facts shown with each model in every API.
json ModelsealFacts(const engine::ModelInfo& m);
// Validates that `v` is a string or an array of strings; appends to `out`.
bool StopStrings(const json& v, std::vector<std::string>* out);

}  // namespace modelseal::server
