// Sampler: SamplingOptions and a chat's grammar, as llama-server passes them to
// llama.cpp's common sampler.
#include "engine/sampler.h"

#include <common.h>
#include <sampling.h>

#include <set>

namespace modelseal::engine {

namespace {
constexpr char kModule[] = "engine";
}  // namespace

struct Sampler::Impl {
  common_sampler_ptr sampler;
  std::set<llama_token> preserved;
};

Sampler::Sampler() : impl_(std::make_unique<Impl>()) {}
Sampler::~Sampler() = default;

Result<std::unique_ptr<Sampler>> Sampler::Make(const llama_model* model, const SamplingOptions& o,
                                               const GrammarSpec* grammar) {
  const llama_vocab* vocab = llama_model_get_vocab(model);
  common_params_sampling p;
  p.no_perf = true;
  p.seed = o.seed ? *o.seed : LLAMA_DEFAULT_SEED;
  p.temp = o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  p.min_p = o.min_p;
  p.typ_p = o.typical_p;
  p.penalty_repeat = o.repeat_penalty;
  p.penalty_last_n = o.repeat_last_n;
  p.penalty_present = o.presence_penalty;
  p.penalty_freq = o.frequency_penalty;
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  for (const auto& [token, bias] : o.logit_bias) {
    if (token < 0 || token >= n_vocab) {
      return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                       "logit_bias names token " + std::to_string(token) +
                           ", outside the model's vocabulary of " + std::to_string(n_vocab));
    }
    p.logit_bias.push_back({token, bias});
  }
  std::unique_ptr<Sampler> s(new Sampler());
  if (grammar != nullptr && !grammar->grammar.empty()) {
    p.grammar = {COMMON_GRAMMAR_TYPE_TOOL_CALLS, grammar->grammar};
    p.grammar_lazy = grammar->lazy;
    p.generation_prompt = grammar->generation_prompt;
    // As llama-server: preserved strings that are one token are kept as text, and a
    // trigger word that is one token becomes a token trigger.
    for (const auto& t : grammar->preserved_tokens) {
      const auto ids = common_tokenize(vocab, t, false, true);
      if (ids.size() == 1) p.preserved_tokens.insert(ids[0]);
    }
    for (const auto& [type, value] : grammar->triggers) {
      common_grammar_trigger trig{static_cast<common_grammar_trigger_type>(type), value};
      if (trig.type == COMMON_GRAMMAR_TRIGGER_TYPE_WORD) {
        const auto ids = common_tokenize(vocab, value, false, true);
        if (ids.size() == 1 && p.preserved_tokens.count(ids[0])) {
          trig.type = COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN;
          trig.token = ids[0];
        }
      }
      p.grammar_triggers.push_back(std::move(trig));
    }
    if (p.grammar_lazy && p.grammar_triggers.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                       "the chat format asks for a lazy grammar without triggers");
    }
  }
  s->impl_->preserved = p.preserved_tokens;
  try {
    s->impl_->sampler.reset(common_sampler_init(model, p));
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     std::string("the sampler could not be set up: ") + e.what());
  }
  if (!s->impl_->sampler) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "the sampler could not be set up (a grammar llama.cpp refused)");
  }
  return s;
}

void Sampler::AcceptPrompt(const std::vector<llama_token>& prompt) {
  for (llama_token t : prompt) common_sampler_accept(impl_->sampler.get(), t, false);
}

llama_token Sampler::Sample(llama_context* ctx, int idx) {
  const llama_token t = common_sampler_sample(impl_->sampler.get(), ctx, idx);
  common_sampler_accept(impl_->sampler.get(), t, true);
  return t;
}

bool Sampler::Preserved(llama_token token) const {
  return impl_->preserved.count(token) != 0;
}

}  // namespace modelseal::engine
