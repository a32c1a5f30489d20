// A request's sampler: llama.cpp's common sampler (the chain llama-server builds:
// penalties, top-k, typical, top-p, min-p, temperature, seeded distribution), with the
// tool-call grammar when a chat asks for one. Internal to the engine.
#pragma once

#include <llama.h>

#include <memory>
#include <vector>

#include "common/error.h"
#include "engine/chat.h"
#include "engine/engine.h"

namespace modelseal::engine {

class Sampler {
 public:
  // Fails with "invalid-argument" when the grammar cannot be used.
  static Result<std::unique_ptr<Sampler>> Make(const llama_model* model,
                                               const SamplingOptions& options,
                                               const GrammarSpec* grammar);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Feeds the prompt to the penalties' history (not to the grammar).
  void AcceptPrompt(const std::vector<llama_token>& prompt);
  // Samples from the logits of batch row `idx` of `ctx` and accepts the token.
  llama_token Sample(llama_context* ctx, int idx);
  // Special tokens the chat format needs to see as text (tool-call markers).
  bool Preserved(llama_token token) const;

 private:
  Sampler();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelseal::engine
