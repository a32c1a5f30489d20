// Embeddings: a context of its own per model (made on first use) that pools each
// input's hidden states into one vector, several inputs per decode.
#include <cmath>

#include "engine/internal.h"

namespace modelseal::engine {

namespace {
constexpr char kModule[] = "engine";
// Inputs decoded together at most (sequences of the embedding context).
constexpr int kEmbedSeqs = 16;
}  // namespace

class Embedder {
 public:
  Embedder(const Engine::Model& m) : m_(m) {}
  ~Embedder() {
    if (ctx_) llama_free(ctx_);
  }

  Status Start() {
    llama_context_params cp = llama_context_default_params();
    n_ctx_ = m_.info.context_length;
    cp.n_ctx = n_ctx_;
    cp.n_batch = n_ctx_;
    cp.n_ubatch = n_ctx_;  // a whole input in one ubatch (non-causal models need it)
    cp.n_seq_max = kEmbedSeqs;
    cp.kv_unified = true;  // inputs of any length share the one cache
    cp.n_threads = m_.info.threads;
    cp.n_threads_batch = m_.info.threads;
    cp.embeddings = true;
    cp.no_perf = true;
    // As declared by the model; a model that declares none (a chat model) gives the
    // last token's state, as Ollama does.
    cp.pooling_type =
        m_.info.pooling == "none" ? LLAMA_POOLING_TYPE_LAST : LLAMA_POOLING_TYPE_UNSPECIFIED;
    ctx_ = llama_init_from_model(m_.model, cp);
    if (!ctx_) {
      return MakeError(ErrorCode::kInternal, kModule, "context-failed",
                       "llama.cpp could not create an embedding context for model " + m_.info.name);
    }
    if (llama_pooling_type(ctx_) == LLAMA_POOLING_TYPE_RANK) {
      return MakeError(ErrorCode::kUnsupported, kModule, "invalid-argument",
                       "model " + m_.info.name + " is a reranker; it makes scores, not embeddings");
    }
    return Ok{};
  }

  Result<EmbedResult> Run(const std::vector<std::string>& inputs, const EmbedOptions& o,
                          const std::atomic<bool>* cancel) {
    const auto t0 = std::chrono::steady_clock::now();
    EmbedResult out;
    std::vector<std::vector<llama_token>> toks;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].empty()) {
        return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                         "input " + std::to_string(i) + " is empty");
      }
      auto t = Tokenize(m_.vocab, inputs[i]);
      if (t.size() > n_ctx_) {
        if (!o.truncate) {
          return MakeError(ErrorCode::kInvalidArgument, kModule, "prompt-too-long",
                           "input " + std::to_string(i) + " has " + std::to_string(t.size()) +
                               " tokens; model '" + m_.info.name + "' has a context of " +
                               std::to_string(n_ctx_));
        }
        t.resize(n_ctx_);
      }
      out.prompt_tokens += static_cast<int>(t.size());
      toks.push_back(std::move(t));
    }
    const int n_embd = llama_model_n_embd_out(m_.model);
    llama_batch batch = llama_batch_init(static_cast<int32_t>(n_ctx_), 0, 1);
    struct Free {
      llama_batch* b;
      ~Free() { llama_batch_free(*b); }
    } free_batch{&batch};
    llama_memory_t mem = llama_get_memory(ctx_);
    const bool encoder_only =
        llama_model_has_encoder(m_.model) && !llama_model_has_decoder(m_.model);
    size_t next = 0;
    while (next < toks.size()) {
      if (cancel && cancel->load()) {
        return MakeError(ErrorCode::kCancelled, kModule, "cancelled", "the request was cancelled");
      }
      // As many whole inputs as fit.
      batch.n_tokens = 0;
      const size_t first = next;
      while (next < toks.size() && next - first < kEmbedSeqs &&
             static_cast<size_t>(batch.n_tokens) + toks[next].size() <= n_ctx_) {
        const auto seq = static_cast<llama_seq_id>(next - first);
        for (size_t p = 0; p < toks[next].size(); ++p) {
          batch.token[batch.n_tokens] = toks[next][p];
          batch.pos[batch.n_tokens] = static_cast<llama_pos>(p);
          batch.n_seq_id[batch.n_tokens] = 1;
          batch.seq_id[batch.n_tokens][0] = seq;
          batch.logits[batch.n_tokens] = true;
          ++batch.n_tokens;
        }
        ++next;
      }
      llama_memory_clear(mem, true);
      const int rc = m_.compute->RunDecode(m_.info.threads, [&] {
        return encoder_only ? llama_encode(ctx_, batch) : llama_decode(ctx_, batch);
      });
      if (rc != 0) {
        return MakeError(ErrorCode::kInternal, kModule, "decode-failed",
                         "computing embeddings failed (llama.cpp code " + std::to_string(rc) + ")");
      }
      for (size_t i = first; i < next; ++i) {
        const float* e = llama_get_embeddings_seq(ctx_, static_cast<llama_seq_id>(i - first));
        if (e == nullptr) {
          return MakeError(ErrorCode::kInternal, kModule, "decode-failed",
                           "llama.cpp returned no embedding for input " + std::to_string(i));
        }
        std::vector<float> v(e, e + n_embd);
        double norm = 0;
        for (float x : v) norm += static_cast<double>(x) * x;
        norm = std::sqrt(norm);
        if (norm > 0) {
          for (float& x : v) x = static_cast<float>(x / norm);
        }
        out.embeddings.push_back(std::move(v));
      }
    }
    llama_memory_clear(mem, true);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  }

 private:
  const Engine::Model& m_;
  llama_context* ctx_ = nullptr;
  uint32_t n_ctx_ = 0;
};

void EmbedderFree::operator()(Embedder* e) const {
  delete e;
}

Result<EmbedResult> Embed(Engine::Model& m, const std::vector<std::string>& inputs,
                          const EmbedOptions& options, const std::atomic<bool>* cancel) {
  if (inputs.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "embeddings need at least one input");
  }
  std::lock_guard<std::mutex> lock(m.embed_mu);
  if (!m.embedder) {
    std::unique_ptr<Embedder, EmbedderFree> e(new Embedder(m));
    MS_RETURN_IF_ERROR(e->Start());
    m.embedder = std::move(e);
  }
  return m.embedder->Run(inputs, options, cancel);
}

}  // namespace modelseal::engine
