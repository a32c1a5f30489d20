// engine: in-process LLM inference on llama.cpp (CPU build pinned by
// scripts/setup.d/20-llama.sh; CUDA offload when the machine has a GPU, see gpu.h).
//
// What it promises:
// * Loads a GGUF model from a plain file (development; marked unmeasured) or from
//   an in-memory file (Memfd, the unsealed model): llama.cpp opens it through
//   /proc/self/fd/N, so no plaintext file is ever created. The Engine owns the
//   Memfd from then on and wipes/frees it when the model is unloaded.
// * Keeps a registry of loaded models by name (ModelInfo); the load pipeline
//   fills in the PCR15 value after it measured the model (SetPcr15After).
// * Generates text with the model's own chat template (GGUF tokenizer.chat_template
//   through llama_chat_apply_template), with sampling options and stop strings,
//   calling a TokenFn with each piece of UTF-8 text as it is produced. The TokenFn
//   returns false to cancel (a client went away); a Cancel flag does the same.
// * Thread-safe: any number of requests run at once, each on its own llama
//   context (contexts are pooled per model). Unload removes the model from the
//   registry at once; its memory is freed when the last running request ends.
//
// Failures are Errors with module "engine"; reasons: "model-not-found",
// "model-exists", "load-failed", "context-failed", "template-failed",
// "prompt-too-long", "decode-failed", "invalid-argument", "cancelled".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/memfd.h"

namespace modelseal::engine {

struct LoadOptions {
  std::string name;             // registry key, e.g. "tiny" or "llama3:8b"
  uint32_t context_length = 0;  // 0: the model's trained length, at most 4096
  int threads = 0;              // 0: all cores
  bool measured = false;        // true only when the pipeline measured it into PCR15
  // Digests when the caller already knows them (the sealed header's, authenticated);
  // empty: the engine computes them from the bytes it loads.
  std::string sha256_hex, sha384_hex;
  std::string source;  // free text for display: "file:/path", "sealed:s3://..."
  bool use_mmap = true;
  // Layers offloaded to the GPU when there is one (see gpu.h): -1 all, 0 none.
  int gpu_layers = -1;
};

struct ModelInfo {
  std::string name;
  std::string source;
  std::string architecture;  // general.architecture
  std::string description;   // llama.cpp's model description ("llama ?B F16")
  std::string chat_template;
  std::string file_type;    // quantization, e.g. "F16", "Q8_0"
  uint64_t size_bytes = 0;  // the GGUF file's size
  uint64_t n_params = 0;
  std::string sha256_hex, sha384_hex;
  std::string pcr15_after_hex;  // empty until the pipeline measured it
  bool measured = false;
  uint32_t context_length = 0;  // per request
  uint32_t trained_context_length = 0;
  std::chrono::system_clock::time_point loaded_at;
  double load_seconds = 0;
  int threads = 0;
  int gpu_layers = 0;  // 0: on the CPU
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct SamplingOptions {
  float temperature = 0.8f;  // <= 0: greedy
  float top_p = 0.95f;       // 1: off
  int top_k = 40;            // <= 0: off
  float min_p = 0.05f;       // 0: off
  float repeat_penalty = 1.0f;
  std::optional<uint32_t> seed;  // none: random
  int max_tokens = -1;           // < 0: until end of sequence or the context is full
  std::vector<std::string> stop;
};

struct GenerateStats {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  // "stop" (end of sequence or a stop string), "length" (max_tokens or context full),
  // "cancelled".
  std::string finish_reason;
  double prompt_seconds = 0;       // prompt evaluation
  double generation_seconds = 0;   // after the prompt
  double first_token_seconds = 0;  // from the start of the request to the first piece
  double total_seconds = 0;
};

// Called with each new piece of text (valid UTF-8, may be empty never). Return
// false to stop generating (finish_reason "cancelled").
using TokenFn = std::function<bool(std::string_view piece)>;

struct EngineCounters {
  uint64_t active = 0, completed = 0, cancelled = 0, failed = 0;
};

class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Loads a plain GGUF file (unmeasured unless options say otherwise).
  Result<ModelInfo> LoadFile(const std::string& path, LoadOptions options);
  // Loads the model held in `memfd` (sealed or not) through /proc/self/fd/N.
  Result<ModelInfo> LoadMemfd(Memfd memfd, LoadOptions options);
  Status Unload(const std::string& name);

  std::vector<ModelInfo> List() const;
  Result<ModelInfo> Get(const std::string& name) const;
  Status SetPcr15After(const std::string& name, const std::string& pcr_hex);

  // The prompt the model's chat template makes of `messages` (with the assistant
  // turn opened).
  Result<std::string> ApplyTemplate(const std::string& name,
                                    const std::vector<ChatMessage>& messages) const;

  // The number of tokens `prompt` makes as Complete (and Chat, after the template)
  // tokenise it: special tokens parsed, BOS when the model wants one. Lets a caller
  // refuse a prompt that does not fit ModelInfo::context_length before it answers.
  Result<int> CountTokens(const std::string& name, const std::string& prompt) const;
  Result<GenerateStats> Chat(const std::string& name, const std::vector<ChatMessage>& messages,
                             const SamplingOptions& sampling, const TokenFn& on_piece,
                             const std::atomic<bool>* cancel = nullptr);
  // Raw completion of `prompt` (no template; BOS added when the model wants it).
  Result<GenerateStats> Complete(const std::string& name, const std::string& prompt,
                                 const SamplingOptions& sampling, const TokenFn& on_piece,
                                 const std::atomic<bool>* cancel = nullptr);

  EngineCounters counters() const;

  struct Model;  // internal

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Writes a tiny llama-architecture GGUF with deterministic weights (a function of
// `seed` and each tensor's name) and the tokenizer of `vocab_path` (one of
// llama.cpp's models/ggml-vocab-*.gguf). See docs/inference.md.
struct TestModelOptions {
  std::string vocab_path;  // empty: the one in the llama.cpp cache
  int layers = 2;
  int dim = 64;
  int heads = 4;
  int kv_heads = 0;  // 0: = heads
  int ff = 0;        // 0: about 8/3 dim, a multiple of 32
  uint32_t context_length = 2048;
  std::string type = "f16";  // f32, f16, q8_0 (2-D weight matrices)
  uint64_t seed = 1;
  std::string name = "modelseal-test";
};
// The vocabulary file the setup hook put in the llama.cpp cache.
std::string DefaultVocabPath();
Result<uint64_t> WriteTestModel(const std::string& out_path, const TestModelOptions& options);

}  // namespace modelseal::engine
