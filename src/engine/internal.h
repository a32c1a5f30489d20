// Engine internals shared by its .cpp files; not part of the public interface.
#pragma once

#include <llama.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/chat.h"
#include "engine/compute.h"
#include "engine/engine.h"

namespace modelseal::engine {

class Embedder;
struct EmbedderFree {
  void operator()(Embedder* e) const;
};

struct Engine::Model {
  ModelInfo info;
  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  std::optional<Memfd> memfd;  // the in-memory file llama.cpp maps, when loaded from one
  std::shared_ptr<ComputeThread> compute;  // the engine's, where every decode runs

  ChatTemplatesPtr templates;  // null when the template could not be read:
  std::string template_error;  // why
  TemplateInfo template_info;

  std::unique_ptr<Batcher> batcher;  // generation: one context, a slot per request

  std::mutex embed_mu;  // one embedding batch at a time; guards embedder
  std::unique_ptr<Embedder, EmbedderFree> embedder;  // made on first use

  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model();
};

// Applies the model's chat template (messages only, no tools).
Result<std::string> FormatChat(const Engine::Model& m, const std::vector<ChatMessage>& messages);

// The tokens of `text` as the model reads a prompt (special tokens parsed, BOS when
// the model wants one).
std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text);

// Runs one generation on `m` from `prompt` (already templated for a chat); each piece
// of text goes to `reader` (a chat) or `on_piece`.
struct GenerateSpec {
  const std::string* prompt = nullptr;
  const GrammarSpec* grammar = nullptr;  // a chat's tool-call grammar
  std::vector<std::string> extra_stops;  // the chat format's
  ChatReader* reader = nullptr;          // a chat's: reads tool calls back
  const ChatDeltaFn* on_delta = nullptr;
  const TokenFn* on_piece = nullptr;
};
Result<GenerateStats> Generate(Engine::Model& m, const GenerateSpec& spec,
                               const SamplingOptions& sampling, const std::atomic<bool>* cancel);

// The request's context: num_ctx within the model's (fails "invalid-argument" above
// the trained length).
Result<int> RequestContext(const Engine::Model& m, uint32_t num_ctx);

// Embeddings (embed.cpp).
Result<EmbedResult> Embed(Engine::Model& m, const std::vector<std::string>& inputs,
                          const EmbedOptions& options, const std::atomic<bool>* cancel);

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
