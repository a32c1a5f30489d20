// Generation: chat templates, tokenisation, the decode loop, sampling, stop strings.
#include <climits>
#include <memory>

#include "engine/internal.h"

namespace modelseal::engine {

namespace {

constexpr char kModule[] = "engine";

struct SamplerFree {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerFree>;

SamplerPtr MakeSampler(const SamplingOptions& o, const llama_vocab* vocab) {
  llama_sampler_chain_params cp = llama_sampler_chain_default_params();
  cp.no_perf = true;
  SamplerPtr chain(llama_sampler_chain_init(cp));
  if (o.repeat_penalty > 0 && o.repeat_penalty != 1.0f) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(llama_vocab_n_tokens(vocab),
                                                                      64, o.repeat_penalty, 0, 0));
  }
  if (o.temperature <= 0) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
    return chain;
  }
  if (o.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(o.top_k));
  if (o.top_p > 0 && o.top_p < 1)
    llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(o.top_p, 1));
  if (o.min_p > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(o.min_p, 1));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(o.temperature));
  llama_sampler_chain_add(chain.get(),
                          llama_sampler_init_dist(o.seed ? *o.seed : LLAMA_DEFAULT_SEED));
  return chain;
}

std::string TokenPiece(const llama_vocab* vocab, llama_token tok) {
  std::string out(32, '\0');
  int n = llama_token_to_piece(vocab, tok, out.data(), static_cast<int32_t>(out.size()), 0, false);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_token_to_piece(vocab, tok, out.data(), static_cast<int32_t>(out.size()), 0, false);
  }
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

bool AbortRequested(void* data) {
  const auto* flag = static_cast<const std::atomic<bool>*>(data);
  return flag && flag->load(std::memory_order_relaxed);
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<std::string> FormatChat(const Engine::Model& m, const std::vector<ChatMessage>& messages) {
  if (messages.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "a chat needs at least one message");
  }
  std::vector<llama_chat_message> msgs;
  size_t total = 0;
  for (const auto& msg : messages) {
    msgs.push_back({msg.role.c_str(), msg.content.c_str()});
    total += msg.role.size() + msg.content.size();
  }
  const char* tmpl = m.info.chat_template.empty() ? nullptr : m.info.chat_template.c_str();
  std::string buf(total * 2 + 512, '\0');
  int n = llama_chat_apply_template(tmpl, msgs.data(), msgs.size(), true, buf.data(),
                                    static_cast<int32_t>(buf.size()));
  if (n > static_cast<int>(buf.size())) {
    buf.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl, msgs.data(), msgs.size(), true, buf.data(),
                                  static_cast<int32_t>(buf.size()));
  }
  if (n < 0) {
    return MakeError(
        ErrorCode::kUnsupported, kModule, "template-failed",
        "the chat template of model '" + m.info.name + "' is not one llama.cpp can apply");
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

Result<GenerateStats> Generate(Engine::Model& m, const std::string& prompt,
                               const SamplingOptions& sampling, const TokenFn& on_piece,
                               const std::atomic<bool>* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  GenerateStats st;
  const int n_ctx = static_cast<int>(m.info.context_length);

  int n = -llama_tokenize(m.vocab, prompt.data(), static_cast<int32_t>(prompt.size()), nullptr, 0,
                          true, true);
  std::vector<llama_token> tokens(static_cast<size_t>(std::max(n, 0)));
  if (n > 0) {
    n = llama_tokenize(m.vocab, prompt.data(), static_cast<int32_t>(prompt.size()), tokens.data(),
                       n, true, true);
  }
  if (n <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "the prompt is empty after tokenisation");
  }
  if (n >= n_ctx) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "prompt-too-long",
                     "the prompt has " + std::to_string(n) + " tokens; model '" + m.info.name +
                         "' has a context of " + std::to_string(n_ctx));
  }
  st.prompt_tokens = n;

  MS_ASSIGN_OR_RETURN(llama_context * ctx, m.Acquire());
  struct Lease {
    Engine::Model& m;
    llama_context* ctx;
    ~Lease() {
      llama_set_abort_callback(ctx, nullptr, nullptr);
      m.Release(ctx);
    }
  } lease{m, ctx};
  llama_memory_clear(llama_get_memory(ctx), true);
  llama_set_abort_callback(ctx, AbortRequested,
                           const_cast<void*>(static_cast<const void*>(cancel)));
  SamplerPtr sampler = MakeSampler(sampling, m.vocab);

  const int n_batch = static_cast<int>(llama_n_batch(ctx));
  for (int i = 0; i < n; i += n_batch) {
    llama_batch batch = llama_batch_get_one(tokens.data() + i, std::min(n_batch, n - i));
    const int rc = m.compute->Decode(ctx, batch, m.info.threads);
    if (rc != 0) {
      if (AbortRequested(const_cast<std::atomic<bool>*>(cancel))) {
        st.finish_reason = "cancelled";
        st.total_seconds = Since(t0);
        return st;
      }
      return MakeError(ErrorCode::kInternal, kModule, "decode-failed",
                       "llama_decode failed on the prompt (code " + std::to_string(rc) + ")");
    }
  }
  st.prompt_seconds = Since(t0);
  const auto t_gen = std::chrono::steady_clock::now();

  PieceFilter filter(sampling.stop);
  const int max_tokens = sampling.max_tokens < 0 ? INT_MAX : sampling.max_tokens;
  int pos = n;
  bool stopped = false;
  bool first = true;
  while (true) {
    if (AbortRequested(const_cast<std::atomic<bool>*>(cancel))) {
      st.finish_reason = "cancelled";
      break;
    }
    if (st.completion_tokens >= max_tokens || pos >= n_ctx) {
      st.finish_reason = "length";
      break;
    }
    llama_token tok = llama_sampler_sample(sampler.get(), ctx, -1);
    if (first) {
      st.first_token_seconds = Since(t0);
      first = false;
    }
    if (llama_vocab_is_eog(m.vocab, tok)) {
      st.finish_reason = "stop";
      break;
    }
    ++st.completion_tokens;
    const std::string out = filter.Push(TokenPiece(m.vocab, tok), &stopped);
    if (!out.empty() && !on_piece(out)) {
      st.finish_reason = "cancelled";
      break;
    }
    if (stopped) {
      st.finish_reason = "stop";
      break;
    }
    llama_batch batch = llama_batch_get_one(&tok, 1);
    const int rc = m.compute->Decode(ctx, batch, m.info.threads);
    if (rc != 0) {
      if (AbortRequested(const_cast<std::atomic<bool>*>(cancel))) {
        st.finish_reason = "cancelled";
        break;
      }
      return MakeError(ErrorCode::kInternal, kModule, "decode-failed",
                       "llama_decode failed at position " + std::to_string(pos) + " (code " +
                           std::to_string(rc) + ")");
    }
    ++pos;
  }
  if (st.finish_reason != "cancelled" && !stopped) {
    const std::string rest = filter.Flush();
    if (!rest.empty() && !on_piece(rest)) st.finish_reason = "cancelled";
  }
  st.generation_seconds = Since(t_gen);
  st.total_seconds = Since(t0);
  return st;
}

}  // namespace modelseal::engine
