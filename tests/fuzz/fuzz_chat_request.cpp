// libFuzzer target: Ollama (/api/chat, /api/generate) and OpenAI
// (/v1/chat/completions, /v1/completions) request bodies: the validation that
// turns a JSON body into sampling options and chat messages (src/server/ollama.cpp
// and openai.cpp, whose parsers are internal to those files and so are compiled
// into this target; the model lookup and prompt templating, which need a loaded
// model, are not run).
//
// Asserts: a body that is accepted yields sampling options within the documented
// ranges (Ollama: top_p, min_p, typical_p in [0, 1]; temperature and penalties
// finite; num_ctx >= 0; max_tokens -1 or in [0, 2^30]; OpenAI: temperature in
// [0, 2], top_k in [0, 2^30], max_tokens in [1, 2^30], at most 4 stop strings),
// chat messages with a known role, and a request field error that names a field;
// every integer and float option is range-checked before conversion (UBSan:
// {"options":{"top_k":1e300}} once converted out of range).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

// Defined by CMake for the server module (src/server/CMakeLists.txt).
#define MODELSEAL_VERSION "fuzz"
#define MODELSEAL_LLAMA_VERSION "fuzz"
// In this order (server.cpp's headers before the files' own anonymous types),
// hence one include per block.
#include "server/server.cpp"

#include "server/ollama.cpp"

#include "server/openai.cpp"

namespace {

using namespace modelseal;
using namespace modelseal::server;

bool InRange(float v, double lo, double hi) {
  return std::isfinite(v) && v >= lo && v <= hi;
}

// Every refusal names the offending field (or says images are unsupported).
void CheckError(const Error& e) {
  if (e.module != "server") __builtin_trap();
  if (e.reason.rfind("invalid-field:", 0) != 0 && e.reason != "images-unsupported") {
    __builtin_trap();
  }
  if (e.reason == "invalid-field:") __builtin_trap();
}

template <typename T>
bool Accepted(const Result<T>& r) {
  if (!r.ok()) CheckError(r.error());
  return r.ok();
}

bool Accepted(const Status& s) {
  if (!s.ok()) CheckError(s.error());
  return s.ok();
}

bool KnownRole(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant" || role == "tool";
}

void CheckOllama(const json& body) {
  (void)Accepted(ModelName(body));
  if (auto m = Messages(body); Accepted(m)) {
    for (const auto& msg : *m)
      if (!KnownRole(msg.role)) __builtin_trap();
  }
  (void)Accepted(CheckTopLevel(body, true));
  (void)Accepted(CheckTopLevel(body, false));
  auto o = Options(body);
  if (!Accepted(o)) return;
  const engine::SamplingOptions& s = *o;
  constexpr double kFloatMax = 3.0e38;
  if (!InRange(s.temperature, 0, kFloatMax) || !InRange(s.top_p, 0, 1) || !InRange(s.min_p, 0, 1) ||
      !InRange(s.typical_p, 0, 1) || !InRange(s.repeat_penalty, 0, kFloatMax) ||
      !InRange(s.presence_penalty, -kFloatMax, kFloatMax) ||
      !InRange(s.frequency_penalty, -kFloatMax, kFloatMax)) {
    __builtin_trap();
  }
  if (s.max_tokens < -1 || s.max_tokens > (1 << 30)) __builtin_trap();
  if (s.num_ctx > static_cast<uint32_t>(INT_MAX) || s.repeat_last_n < 0) __builtin_trap();
}

void CheckOpenAi(const json& body) {
  if (auto m = ParseMessages(body); Accepted(m)) {
    if (m->empty()) __builtin_trap();
    for (const auto& msg : *m)
      if (!KnownRole(msg.role)) __builtin_trap();
  }
  Completion r;
  const Status st = ParseCommon(body, &r);
  if (!Accepted(st)) return;
  const engine::SamplingOptions& s = r.sampling;
  if (r.model.empty()) __builtin_trap();
  if (!InRange(s.temperature, 0, 2) || !InRange(s.top_p, 0, 1) || !InRange(s.min_p, 0, 1) ||
      !InRange(s.presence_penalty, -2, 2) || !InRange(s.frequency_penalty, -2, 2)) {
    __builtin_trap();
  }
  if (s.top_k < 0 || s.top_k > (1 << 30)) __builtin_trap();
  if (s.max_tokens != -1 && (s.max_tokens < 1 || s.max_tokens > (1 << 30))) __builtin_trap();
  if (s.stop.size() > 4) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // As ParseObject (server.cpp) reads a body.
  const json body = json::parse(data, data + size, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return 0;
  CheckOllama(body);
  CheckOpenAi(body);
  return 0;
}
