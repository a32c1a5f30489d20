// OpenAI's function calling on /v1/chat/completions: `tools`, `tool_choice`,
// `parallel_tool_calls`, the assistant's `tool_calls` and `tool` messages in the
// history, `logit_bias`, and the tool calls of an answer in OpenAI's shape
// (https://platform.openai.com/docs/api-reference/chat/create).
#include <cmath>
#include <limits>

#include "server/internal.h"

namespace modelseal::server {

Result<std::vector<engine::Tool>> ParseTools(const json& body) {
  std::vector<engine::Tool> out;
  const json* tools = Field(body, "tools");
  if (tools == nullptr) return out;
  if (!tools->is_array()) return FieldError("tools", "tools must be an array");
  if (tools->size() > 128) return FieldError("tools", "at most 128 tools are allowed");
  for (size_t i = 0; i < tools->size(); ++i) {
    const json& t = (*tools)[i];
    const std::string at = "tools[" + std::to_string(i) + "]";
    if (!t.is_object() || t.value("type", json()) != "function") {
      return FieldError(at, at + " must be an object with type \"function\"");
    }
    const json* fn = Field(t, "function");
    if (fn == nullptr || !fn->is_object())
      return FieldError(at, at + ".function must be an object");
    MS_ASSIGN_OR_RETURN(const auto name, OptString(*fn, "name"));
    // OpenAI: a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
    if (!name || name->empty() || name->size() > 64 ||
        name->find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            std::string::npos) {
      return FieldError(at, at + ".function.name must be 1-64 letters, digits, _ or -");
    }
    for (const auto& seen : out) {
      if (seen.name == *name) return FieldError(at, "two tools are named '" + *name + "'");
    }
    MS_ASSIGN_OR_RETURN(const auto description, OptString(*fn, "description"));
    engine::Tool tool{*name, description.value_or(""), ""};
    if (const json* params = Field(*fn, "parameters"); params != nullptr) {
      if (!params->is_object()) {
        return FieldError(at, at + ".function.parameters must be a JSON Schema object");
      }
      tool.parameters = params->dump();
    }
    out.push_back(std::move(tool));
  }
  return out;
}

Status ParseToolChoice(const json& body, engine::ChatRequest* request) {
  const json* choice = Field(body, "tool_choice");
  MS_ASSIGN_OR_RETURN(const auto parallel, OptBool(body, "parallel_tool_calls"));
  request->parallel_tool_calls = parallel.value_or(false);
  if (choice == nullptr) {
    request->tool_choice = engine::ToolChoice::kAuto;
    return Ok{};
  }
  if (choice->is_string()) {
    const std::string c = choice->get<std::string>();
    if (c == "auto") {
      request->tool_choice = engine::ToolChoice::kAuto;
    } else if (c == "none") {
      request->tool_choice = engine::ToolChoice::kNone;
    } else if (c == "required") {
      request->tool_choice = engine::ToolChoice::kRequired;
    } else {
      return FieldError("tool_choice", "tool_choice must be none, auto, required or a function");
    }
  } else if (choice->is_object() && choice->value("type", json()) == "function" &&
             choice->contains("function") && (*choice)["function"].is_object() &&
             (*choice)["function"].contains("name") && (*choice)["function"]["name"].is_string()) {
    // One named function: the model must call it, so it is the only tool offered.
    const std::string name = (*choice)["function"]["name"].get<std::string>();
    std::vector<engine::Tool> only;
    for (auto& t : request->tools) {
      if (t.name == name) only.push_back(std::move(t));
    }
    if (only.empty()) {
      return FieldError("tool_choice", "tool_choice names '" + name + "', which is not in tools");
    }
    request->tools = std::move(only);
    request->tool_choice = engine::ToolChoice::kRequired;
  } else {
    return FieldError("tool_choice",
                      "tool_choice must be none, auto, required or "
                      "{\"type\": \"function\", \"function\": {\"name\": ...}}");
  }
  if (request->tools.empty() && request->tool_choice == engine::ToolChoice::kRequired) {
    return FieldError("tool_choice", "tool_choice 'required' needs tools");
  }
  return Ok{};
}

Status ParseMessageToolFields(const json& m, size_t index, engine::ChatMessage* out) {
  const std::string at = "messages[" + std::to_string(index) + "]";
  if (out->role == "assistant") {
    const json* calls = Field(m, "tool_calls");
    if (calls == nullptr) return Ok{};
    if (!calls->is_array()) return FieldError("messages", at + ".tool_calls must be an array");
    for (const auto& c : *calls) {
      const json* fn = c.is_object() ? Field(c, "function") : nullptr;
      if (fn == nullptr || !fn->is_object() || !fn->contains("name") ||
          !(*fn)["name"].is_string()) {
        return FieldError("messages", at + ".tool_calls[] must have function.name");
      }
      engine::ToolCall call;
      call.name = (*fn)["name"].get<std::string>();
      if (c.contains("id") && c["id"].is_string()) call.id = c["id"].get<std::string>();
      // Arguments are JSON text in OpenAI's API; an object is accepted too.
      const json args = fn->value("arguments", json("{}"));
      if (args.is_string()) {
        call.arguments = args.get<std::string>();
      } else if (args.is_object()) {
        call.arguments = args.dump();
      } else {
        return FieldError("messages", at + ".tool_calls[].function.arguments must be JSON text");
      }
      if (!json::accept(call.arguments)) {
        return FieldError("messages", at + ".tool_calls[].function.arguments is not valid JSON");
      }
      out->tool_calls.push_back(std::move(call));
    }
  } else if (out->role == "tool") {
    MS_ASSIGN_OR_RETURN(const auto id, OptString(m, "tool_call_id"));
    if (!id || id->empty())
      return FieldError("messages", at + ": a tool message needs tool_call_id");
    out->tool_call_id = *id;
    MS_ASSIGN_OR_RETURN(const auto name, OptString(m, "name"));
    out->tool_name = name.value_or("");
  }
  return Ok{};
}

Result<std::vector<std::pair<int32_t, float>>> ParseLogitBias(const json& body) {
  std::vector<std::pair<int32_t, float>> out;
  const json* bias = Field(body, "logit_bias");
  if (bias == nullptr) return out;
  if (!bias->is_object())
    return FieldError("logit_bias", "logit_bias must map token ids to numbers");
  if (bias->size() > 1024) return FieldError("logit_bias", "at most 1024 token biases are allowed");
  for (const auto& [key, value] : bias->items()) {
    char* end = nullptr;
    errno = 0;
    const long long id = key.empty() ? -1 : std::strtoll(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || errno != 0 || id < 0 || id > INT32_MAX) {
      return FieldError("logit_bias", "'" + key.substr(0, 32) + "' is not a token id");
    }
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < -100 ||
        value.get<double>() > 100) {
      return FieldError("logit_bias", "each bias must be a number from -100 to 100");
    }
    // As OpenAI documents it: -100 bans the token.
    const double v = value.get<double>();
    out.emplace_back(static_cast<int32_t>(id),
                     v <= -100 ? -std::numeric_limits<float>::infinity() : static_cast<float>(v));
  }
  return out;
}

json ToolCallsJson(const std::vector<engine::ToolCall>& calls) {
  json out = json::array();
  for (const auto& c : calls) {
    out.push_back({{"id", c.id},
                   {"type", "function"},
                   {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return out;
}

json ToolCallDeltasJson(const std::vector<engine::ToolCallDelta>& deltas) {
  json out = json::array();
  for (const auto& d : deltas) {
    json j = {{"index", d.index}};
    json fn = {{"arguments", d.arguments}};
    if (!d.name.empty()) {
      j["id"] = d.id;
      j["type"] = "function";
      fn["name"] = d.name;
    }
    j["function"] = std::move(fn);
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace modelseal::server
