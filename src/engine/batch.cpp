// Batcher: the continuous-batching decode loop (see batch.h).
#include "engine/batch.h"

#include <algorithm>

namespace modelseal::engine {

namespace {

constexpr char kModule[] = "engine";
// Prompt tokens one slot decodes per step (whole chunks; 4 ubatches).
constexpr int kPromptBatch = 4 * kPromptChunk;
static_assert(kPromptBatch % kPromptChunk == 0);

void BatchAdd(llama_batch& b, llama_token t, llama_pos pos, llama_seq_id seq, bool logits) {
  b.token[b.n_tokens] = t;
  b.pos[b.n_tokens] = pos;
  b.n_seq_id[b.n_tokens] = 1;
  b.seq_id[b.n_tokens][0] = seq;
  b.logits[b.n_tokens] = logits;
  ++b.n_tokens;
}

struct BatchFree {
  void operator()(llama_batch* b) const {
    llama_batch_free(*b);
    delete b;
  }
};
using BatchPtr = std::unique_ptr<llama_batch, BatchFree>;
BatchPtr NewBatch(int n) {
  return BatchPtr(new llama_batch(llama_batch_init(n, 0, 1)));
}

}  // namespace

struct Batcher::Slot {
  int id = 0;  // the sequence
  std::shared_ptr<DecodeJob> job;
  // The prompt whose first `reusable` tokens (whole chunks) are in this sequence's KV
  // cache at positions 0.. .
  std::vector<llama_token> kept;
  int reusable = 0;
  int n_done = 0;  // prompt tokens of the job decoded
  bool generating = false;
  llama_token next = LLAMA_TOKEN_NULL;  // sampled, not yet decoded
  int generated = 0;
  uint64_t last_used = 0;
};

Batcher::Batcher(llama_model* model, Options options, std::shared_ptr<ComputeThread> compute)
    : model_(model),
      vocab_(llama_model_get_vocab(model)),
      o_(std::move(options)),
      compute_(std::move(compute)) {}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (ctx_) llama_free(ctx_);
}

Status Batcher::Start() {
  llama_context_params cp = llama_context_default_params();
  cp.n_seq_max = static_cast<uint32_t>(o_.parallel);
  cp.n_ctx = static_cast<uint32_t>(o_.parallel) * o_.slot_ctx;
  cp.n_batch = static_cast<uint32_t>(std::max(kPromptBatch, o_.parallel));
  cp.n_ubatch = static_cast<uint32_t>(std::max(kPromptChunk, o_.parallel));
  cp.kv_unified = false;  // a KV stream per slot: a slot's attention never sees another's
  cp.n_threads = o_.threads;
  cp.n_threads_batch = o_.threads;
  cp.no_perf = true;
  cp.abort_callback = AbortDecode;
  cp.abort_callback_data = this;
  ctx_ = llama_init_from_model(model_, cp);
  if (!ctx_) {
    return MakeError(ErrorCode::kInternal, kModule, "context-failed",
                     "llama.cpp could not create a context of " + std::to_string(o_.parallel) +
                         " x " + std::to_string(o_.slot_ctx) + " tokens for model " +
                         o_.model_name);
  }
  o_.slot_ctx = std::min<uint32_t>(o_.slot_ctx, llama_n_ctx_seq(ctx_));
  slots_.resize(static_cast<size_t>(o_.parallel));
  for (int i = 0; i < o_.parallel; ++i) slots_[static_cast<size_t>(i)].id = i;
  thread_ = std::thread([this] { Loop(); });
  return Ok{};
}

void Batcher::Submit(std::shared_ptr<DecodeJob> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      queue_.push_back(std::move(job));
      cv_.notify_all();
      return;
    }
  }
  std::lock_guard<std::mutex> lock(job->mu);
  job->done = true;
  job->finish_reason = "cancelled";
  job->cv.notify_all();
}

bool Batcher::Wanted(const DecodeJob& j) const {
  return !j.stop.load(std::memory_order_relaxed) &&
         !(j.cancel && j.cancel->load(std::memory_order_relaxed));
}

bool Batcher::AbortDecode(void* self) {
  const auto* b = static_cast<const Batcher*>(self);
  if (b->in_flight_.empty()) return false;
  for (const DecodeJob* j : b->in_flight_) {
    if (b->Wanted(*j)) return false;
  }
  return true;
}

void Batcher::Finish(Slot& s, const char* reason, std::optional<Error> error) {
  {
    std::lock_guard<std::mutex> lock(s.job->mu);
    if (!s.job->done) {
      s.job->done = true;
      if (s.job->finish_reason.empty()) s.job->finish_reason = reason;
      s.job->error = std::move(error);
    }
    s.job->cv.notify_all();
  }
  // What stays reusable (s.reusable): the prompt's whole chunks decoded so far.
  s.job.reset();
  s.generating = false;
  s.last_used = ++clock_;
}

void Batcher::Admit() {
  llama_memory_t mem = llama_get_memory(ctx_);
  while (!queue_.empty()) {
    std::shared_ptr<DecodeJob> job = queue_.front();
    if (!Wanted(*job)) {
      queue_.pop_front();
      std::lock_guard<std::mutex> lock(job->mu);
      job->done = true;
      if (job->finish_reason.empty()) job->finish_reason = "cancelled";
      job->cv.notify_all();
      continue;
    }
    const int n = static_cast<int>(job->prompt.size());
    Slot* best = nullptr;
    int best_p = -1;
    for (auto& s : slots_) {
      if (s.job) continue;
      int lcp = 0;
      const int lim = std::min(s.reusable, n - 1);
      while (lcp < lim &&
             s.kept[static_cast<size_t>(lcp)] == job->prompt[static_cast<size_t>(lcp)]) {
        ++lcp;
      }
      const int p = (lcp / kPromptChunk) * kPromptChunk;
      if (p > best_p || (p == best_p && s.last_used < best->last_used)) {
        best = &s;
        best_p = p;
      }
    }
    if (best == nullptr) return;  // every slot is busy: wait for one
    queue_.pop_front();
    Slot& s = *best;
    int p = best_p;
    if (!llama_memory_seq_rm(mem, s.id, p, -1)) {
      llama_memory_seq_rm(mem, s.id, -1, -1);
      p = 0;
    }
    s.job = std::move(job);
    s.kept = s.job->prompt;
    s.reusable = p;
    s.n_done = p;
    s.generating = false;
    s.generated = 0;
    s.next = LLAMA_TOKEN_NULL;
    s.job->cached_tokens = p;
  }
}

int Batcher::Decode(const llama_batch& batch, const std::vector<Slot*>& slots) {
  in_flight_.clear();
  for (Slot* s : slots) in_flight_.push_back(s->job.get());
  const int rc = compute_->Decode(ctx_, batch, o_.threads);
  in_flight_.clear();
  if (rc == 0) return 0;
  // The sequences' caches are in an unknown state: drop them.
  llama_memory_t mem = llama_get_memory(ctx_);
  for (Slot* s : slots) {
    llama_memory_seq_rm(mem, s->id, -1, -1);
    s->kept.clear();
    s->reusable = 0;
    s->n_done = 0;
    if (rc == 2) {
      Finish(*s, "cancelled");
    } else {
      Finish(*s, "",
             MakeError(ErrorCode::kInternal, kModule, "decode-failed",
                       "llama_decode failed (code " + std::to_string(rc) + ") on model " +
                           o_.model_name));
    }
  }
  return rc;
}

void Batcher::Loop() {
  BatchPtr gen = NewBatch(std::max(1, o_.parallel));
  BatchPtr pp = NewBatch(kPromptBatch);
  // Hands `tok`, just sampled for `s`, to its job; ends the job when it should.
  const auto deliver = [&](Slot& s, llama_token tok) {
    ++s.generated;
    if (llama_vocab_is_eog(vocab_, tok)) return Finish(s, "stop");
    {
      std::lock_guard<std::mutex> lock(s.job->mu);
      s.job->tokens.push_back(tok);
      s.job->cv.notify_all();
    }
    const int used = static_cast<int>(s.job->prompt.size()) + s.generated;
    if ((s.job->max_tokens >= 0 && s.generated >= s.job->max_tokens) || used >= s.job->n_ctx) {
      return Finish(s, "length");
    }
    s.next = tok;
    s.generating = true;
  };
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        if (stop_ || !queue_.empty()) return true;
        for (const auto& s : slots_) {
          if (s.job) return true;
        }
        return false;
      });
      if (stop_) break;
      Admit();
    }
    for (auto& s : slots_) {
      if (s.job && !Wanted(*s.job)) Finish(s, "cancelled");
    }

    // Generation: one token of every generating slot, together.
    gen->n_tokens = 0;
    std::vector<Slot*> generating;
    for (auto& s : slots_) {
      if (!s.job || !s.generating) continue;
      const llama_pos pos = static_cast<llama_pos>(s.job->prompt.size()) + s.generated - 1;
      BatchAdd(*gen, s.next, pos, s.id, true);
      generating.push_back(&s);
    }
    if (!generating.empty() && o_.counters) {
      ++o_.counters->steps;
      o_.counters->tokens += generating.size();
    }
    if (!generating.empty() && Decode(*gen, generating) == 0) {
      for (size_t i = 0; i < generating.size(); ++i) {
        Slot& s = *generating[i];
        deliver(s, s.job->sampler->Sample(ctx_, static_cast<int>(i)));
      }
    }

    // Prompts: each slot's next chunks in a decode of its own.
    for (auto& s : slots_) {
      if (!s.job || s.generating) continue;
      const int n = static_cast<int>(s.job->prompt.size());
      const int from = s.n_done, to = std::min(n, from + kPromptBatch);
      pp->n_tokens = 0;
      for (int i = from; i < to; ++i) {
        BatchAdd(*pp, s.job->prompt[static_cast<size_t>(i)], i, s.id, i == n - 1);
      }
      if (Decode(*pp, {&s}) != 0) continue;
      s.n_done = to;
      s.reusable = (to / kPromptChunk) * kPromptChunk;
      if (to == n) {
        {
          std::lock_guard<std::mutex> lock(s.job->mu);
          s.job->prompt_done = std::chrono::steady_clock::now();
        }
        deliver(s, s.job->sampler->Sample(ctx_, pp->n_tokens - 1));
      }
    }
  }
  // Stopping: nothing more will run.
  for (auto& s : slots_) {
    if (s.job) Finish(s, "cancelled");
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& job : queue_) {
    std::lock_guard<std::mutex> jl(job->mu);
    job->done = true;
    if (job->finish_reason.empty()) job->finish_reason = "cancelled";
    job->cv.notify_all();
  }
  queue_.clear();
}

}  // namespace modelseal::engine
