// engine: in-process LLM inference on llama.cpp (the CPU backend built for every x86
// family and picked at run time, see cpu.h; CUDA offload when the machine has a GPU,
// see gpu.h).
//
// What it promises:
// * Loads a GGUF model from a plain file (development; marked unmeasured) or from
//   an in-memory file (Memfd, the unsealed model): llama.cpp opens it through
//   /proc/self/fd/N, so no plaintext file is ever created. The Engine owns the
//   Memfd from then on and wipes/frees it when the model is unloaded.
// * Keeps a registry of loaded models by name (ModelInfo). A model is marked measured
//   (with the PCR15 value after its measurement) only when its load carries a
//   Measurement, which only the load pipeline can make.
// * Chat renders the model's own Jinja chat template (GGUF tokenizer.chat_template)
//   with llama.cpp's common chat library, as llama-server does with --jinja: system
//   prompts, multi-turn, tools, bos_token/eos_token; a model without a template gets
//   ChatML. With tools, tool calls are parsed out of the answer (and, for
//   ToolChoice::kRequired, forced by a grammar). Pieces of the answer reach a callback
//   as they are produced; the callback returns false to cancel (a client went away),
//   and a cancel flag does the same.
// * Continuous batching: each model has one llama context with LoadOptions::parallel
//   sequences ("slots"); concurrent requests decode together, one sequence each, with
//   their own sampling, joining and leaving the batch between steps. Decodes run on the
//   engine's compute thread (compute.h). A request that finds no free slot waits.
// * Prompt cache: a slot keeps the tokens of its last prompt; the next request whose
//   prompt starts the same way (a conversation's next turn) reuses that part of the KV
//   cache. Prompts are decoded in chunks aligned to fixed positions, and only whole
//   chunks are reused, so a seeded request that runs alone gives the same tokens
//   whether its prefix came from the cache or not. Requests that run at the same time
//   change each other's rounding (see docs/inference.md).
// * Embeddings (Embed): pooled as the model declares (the last token's state when it
//   declares none, as Ollama does), L2-normalised.
// * Thread-safe: any number of requests at once. Unload removes the model from the
//   registry at once; its memory is freed when the last running request ends.
//
// Failures are Errors with module "engine"; reasons: "model-not-found",
// "model-exists", "load-failed", "context-failed", "template-invalid",
// "template-error" (the template raised an exception: bad input, 400),
// "prompt-too-long", "decode-failed", "invalid-argument", "cpu-backend",
// "cancelled".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/memfd.h"

namespace modelseal::pipeline {
class MeasurementIssuer;
}  // namespace modelseal::pipeline

namespace modelseal::engine {

// What the load pipeline extended PCR15 with before loading a model: its SHA-384
// and PCR15 right after. Only pipeline::MeasurementIssuer can make one, so code that
// loads a plain file or any other memfd cannot mark a model measured.
class Measurement {
 public:
  const std::string& sha384_hex() const { return sha384_hex_; }
  const std::string& pcr15_after_hex() const { return pcr15_after_hex_; }

 private:
  friend class pipeline::MeasurementIssuer;
  Measurement(std::string sha384_hex, std::string pcr15_after_hex)
      : sha384_hex_(std::move(sha384_hex)), pcr15_after_hex_(std::move(pcr15_after_hex)) {}
  std::string sha384_hex_, pcr15_after_hex_;
};

struct LoadOptions {
  std::string name;             // registry key, e.g. "tiny" or "llama3:8b"
  uint32_t context_length = 0;  // 0: the model's trained length, at most 4096
  int threads = 0;              // 0: all cores
  // Set by the load pipeline (LoadMemfd only): the model is marked measured. Its
  // SHA-384 must be the model's ("measurement-mismatch" otherwise).
  std::optional<Measurement> measurement;
  // Digests when the caller already knows them (the sealed header's, authenticated);
  // empty: the engine computes them from the bytes it loads.
  std::string sha256_hex, sha384_hex;
  std::string source;  // free text for display: "file:/path", "sealed:s3://..."
  bool use_mmap = true;
  // Layers offloaded to the GPU when there is one (see gpu.h): -1 all, 0 none.
  int gpu_layers = -1;
  // Requests decoded together (slots); each has context_length tokens of its own.
  // 0: 4.
  int parallel = 0;
};

struct ModelInfo {
  std::string name;
  std::string source;
  std::string architecture;       // general.architecture
  std::string description;        // llama.cpp's model description ("llama ?B F16")
  std::string chat_template;      // the Jinja template in use
  bool default_template = false;  // the model has none: ChatML is used
  bool supports_tools = false;    // the template renders tools
  std::string file_type;          // quantization, e.g. "F16", "Q8_0"
  uint64_t size_bytes = 0;        // the GGUF file's size
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
  int parallel = 0;    // slots: requests decoded together
  uint32_t embedding_length = 0;
  std::string pooling;  // the model's: "none", "mean", "cls", "last", "rank"
};

struct ToolCall {
  std::string id;         // "call_..."; generated when the model gives none
  std::string name;       // the function
  std::string arguments;  // JSON text (an object)
};

struct ChatMessage {
  ChatMessage() = default;
  ChatMessage(std::string r, std::string c) : role(std::move(r)), content(std::move(c)) {}

  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
  std::vector<ToolCall> tool_calls;  // an assistant's
  std::string tool_call_id;          // a tool result's: the call it answers
  std::string tool_name;             // a tool result's: the function's name
  std::string reasoning_content;     // an assistant's thinking, when given back
};

// A function the model may call (OpenAI's tools[].function).
struct Tool {
  std::string name;
  std::string description;
  std::string parameters;  // JSON schema text; empty: none
};

enum class ToolChoice { kAuto, kNone, kRequired };

struct ChatRequest {
  ChatRequest() = default;
  ChatRequest(std::vector<ChatMessage> m) : messages(std::move(m)) {}  // NOLINT: implicit

  std::vector<ChatMessage> messages;
  std::vector<Tool> tools;
  ToolChoice tool_choice = ToolChoice::kAuto;
  bool parallel_tool_calls = false;
};

// A change to the answer while it streams: text, or part of a tool call (the first
// delta of a call carries its id and name, later ones more of its arguments).
struct ToolCallDelta {
  size_t index = 0;
  std::string id, name, arguments;
};
struct ChatDelta {
  std::string content;
  std::vector<ToolCallDelta> tool_calls;
};
// Return false to stop generating (finish_reason "cancelled").
using ChatDeltaFn = std::function<bool(const ChatDelta& delta)>;

struct SamplingOptions {
  float temperature = 0.8f;  // <= 0: greedy
  float top_p = 0.95f;       // 1: off
  int top_k = 40;            // <= 0: off
  float min_p = 0.05f;       // 0: off
  float repeat_penalty = 1.0f;
  std::optional<uint32_t> seed;  // none: random
  int max_tokens = -1;           // < 0: until end of sequence or the context is full
  std::vector<std::string> stop;
  int repeat_last_n = 64;       // tokens the repeat penalties look back on
  float presence_penalty = 0;   // OpenAI's; 0: off
  float frequency_penalty = 0;  // OpenAI's; 0: off
  float typical_p = 1;          // 1: off
  // Added to the logits of the given token ids before sampling (OpenAI's logit_bias);
  // -infinity bans a token. Ids must be below the model's vocabulary size.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // This request's context (prompt and answer), at most the model's context_length;
  // 0: that. The answer ends ("length") when it is full.
  uint32_t num_ctx = 0;
};

struct GenerateStats {
  int prompt_tokens = 0;
  int cached_tokens = 0;  // of prompt_tokens, reused from the prompt cache
  int completion_tokens = 0;
  // "stop" (end of sequence or a stop string), "length" (max_tokens or context full),
  // "cancelled".
  std::string finish_reason;
  double prompt_seconds = 0;       // prompt evaluation
  double generation_seconds = 0;   // after the prompt
  double first_token_seconds = 0;  // from the start of the request to the first piece
  double total_seconds = 0;
};

// Called with each new piece of text (valid UTF-8, never empty). Return
// false to stop generating (finish_reason "cancelled").
using TokenFn = std::function<bool(std::string_view piece)>;

struct ChatResult {
  ChatMessage message;  // the assistant's answer (content and tool calls)
  GenerateStats stats;
};

// The prompt a chat makes, and what it costs.
struct RenderedChat {
  std::string prompt;
  int prompt_tokens = 0;
};

struct EmbedOptions {
  // Inputs longer than the model's context are cut to fit (Ollama's default);
  // false: refused with "prompt-too-long".
  bool truncate = true;
};
struct EmbedResult {
  std::vector<std::vector<float>> embeddings;  // one per input, L2 norm 1
  int prompt_tokens = 0;                       // all inputs together
  double seconds = 0;
};

struct EngineCounters {
  uint64_t active = 0, completed = 0, cancelled = 0, failed = 0;
  // Generation steps of the batch loops and the tokens they decoded: tokens / steps is
  // how many requests decoded together on average.
  uint64_t batch_steps = 0, batch_tokens = 0;
};

class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Loads a plain GGUF file, unmeasured (options.measurement is refused).
  Result<ModelInfo> LoadFile(const std::string& path, LoadOptions options);
  // Loads the model held in `memfd` (sealed or not) through /proc/self/fd/N.
  Result<ModelInfo> LoadMemfd(Memfd memfd, LoadOptions options);
  Status Unload(const std::string& name);

  std::vector<ModelInfo> List() const;
  Result<ModelInfo> Get(const std::string& name) const;

  // The prompt the model's chat template makes of `messages` (with the assistant
  // turn opened).
  Result<std::string> ApplyTemplate(const std::string& name,
                                    const std::vector<ChatMessage>& messages) const;
  // The prompt of `request` and its length in tokens, checked against the model's
  // context (`num_ctx` when not 0): "prompt-too-long" when it leaves no room for an
  // answer. Lets a caller refuse a request before it answers anything.
  Result<RenderedChat> RenderChat(const std::string& name, const ChatRequest& request,
                                  uint32_t num_ctx = 0) const;

  // The number of tokens `prompt` makes as Complete (and Chat, after the template)
  // tokenise it: special tokens parsed, BOS when the model wants one. Lets a caller
  // refuse a prompt that does not fit ModelInfo::context_length before it answers.
  Result<int> CountTokens(const std::string& name, const std::string& prompt) const;

  // A chat turn: the answer streams to `on_delta`; the whole of it is returned.
  Result<ChatResult> Chat(const std::string& name, const ChatRequest& request,
                          const SamplingOptions& sampling, const ChatDeltaFn& on_delta,
                          const std::atomic<bool>* cancel = nullptr);
  // The same without tools: each piece of the answer's text to `on_piece`.
  Result<GenerateStats> Chat(const std::string& name, const std::vector<ChatMessage>& messages,
                             const SamplingOptions& sampling, const TokenFn& on_piece,
                             const std::atomic<bool>* cancel = nullptr);
  // Raw completion of `prompt` (no template; BOS added when the model wants it).
  Result<GenerateStats> Complete(const std::string& name, const std::string& prompt,
                                 const SamplingOptions& sampling, const TokenFn& on_piece,
                                 const std::atomic<bool>* cancel = nullptr);

  // One embedding per input (batched together). Fails with "invalid-argument" for
  // no inputs or an empty one, "prompt-too-long" (truncate off), "cancelled".
  Result<EmbedResult> Embed(const std::string& name, const std::vector<std::string>& inputs,
                            const EmbedOptions& options = {},
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
  std::string type = "f16";  // f32, f16, q8_0, q4_0, q4_k (2-D weight matrices); q4_k
                             // needs dim and ff to be multiples of 256
  // tokenizer.chat_template: the Llama 2 template by default; "none" writes none.
  std::string chat_template;
  std::string pooling;  // "": none written; "mean", "cls", "last"
  uint64_t seed = 1;
  std::string name = "modelseal-test";
};
// The vocabulary file the setup hook put in the llama.cpp cache.
std::string DefaultVocabPath();
Result<uint64_t> WriteTestModel(const std::string& out_path, const TestModelOptions& options);

}  // namespace modelseal::engine
