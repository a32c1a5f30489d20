// Engine internals shared by its .cpp files; not part of the public interface.
#pragma once

#include <llama.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/compute.h"
#include "engine/engine.h"

namespace modelseal::engine {

struct Engine::Model {
  ModelInfo info;
  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  std::optional<Memfd> memfd;  // the in-memory file llama.cpp maps, when loaded from one
  std::shared_ptr<ComputeThread> compute;  // the engine's, where every decode runs

  std::mutex pool_mu;
  std::vector<llama_context*> idle;  // contexts ready for the next request

  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model();

  // A context of info.context_length tokens, from the pool or new.
  Result<llama_context*> Acquire();
  void Release(llama_context* ctx);
};

// Applies the model's chat template (llama_chat_apply_template).
Result<std::string> FormatChat(const Engine::Model& m, const std::vector<ChatMessage>& messages);

// Runs one generation on `m` from `prompt` (already templated when it is a chat).
Result<GenerateStats> Generate(Engine::Model& m, const std::string& prompt,
                               const SamplingOptions& sampling, const TokenFn& on_piece,
                               const std::atomic<bool>* cancel);

// Holds back text that could still become a stop string or is an unfinished UTF-8
// sequence; hands out the rest.
class PieceFilter {
 public:
  explicit PieceFilter(std::vector<std::string> stop) : stop_(std::move(stop)) {}
  // Adds `text`; returns what may be emitted now. Sets `stopped` when a stop string
  // appeared (the text before it is returned, the rest dropped).
  std::string Push(std::string_view text, bool* stopped);
  // What is left at the end (invalid or unfinished UTF-8 replaced by U+FFFD).
  std::string Flush();

 private:
  std::vector<std::string> stop_;
  std::string pending_;
};

// Replaces invalid UTF-8 in `s` by U+FFFD; `complete_len` gets the length of the
// prefix that ends on a whole character (the rest may be an unfinished sequence).
std::string SanitizeUtf8(std::string_view s, size_t* complete_len = nullptr);

}  // namespace modelseal::engine
