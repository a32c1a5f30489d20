// Continuous batching: one llama context per model with a sequence ("slot") per
// request; one thread per model runs the decode loop. Internal to the engine.
//
// Each step of the loop:
//   1. admits waiting jobs into free slots: the slot whose kept prompt shares the
//      longest reusable prefix with the new prompt (the prompt cache), else the one
//      used least recently; the rest of that slot's KV cache is dropped;
//   2. decodes the next token of every generating slot, together, in one batch;
//   3. decodes the prompts of admitted slots, each slot in a decode of its own, from a
//      position that is a multiple of kPromptChunk, in ubatches of kPromptChunk tokens;
//   4. samples each slot's next token with its own sampler and hands it to the job.
// Because a prompt is always cut into the same aligned chunks, decoded with nothing
// else in the batch, its KV cache is the same whether it was decoded now or reused from
// an earlier request, and only whole chunks are reused: a seeded request that runs
// alone gives the same tokens with or without the cache. Generation steps mix the
// tokens of all running requests (matrix products round differently with the batch
// size), so concurrent requests may change each other's tokens.
//
// All decodes go through the engine's ComputeThread (one OpenMP team, see compute.h).
// A job's consumer (the request's thread) reads tokens as they come and may stop it
// at any time; a cancel flag set while a decode runs aborts that decode when every job
// in it is cancelled.
#pragma once

#include <llama.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "engine/compute.h"
#include "engine/sampler.h"

namespace modelseal::engine {

// Prompts are decoded and cached in chunks of this many tokens.
inline constexpr int kPromptChunk = 128;

// One request's generation, shared by its thread and the batch loop.
struct DecodeJob {
  // Set before Submit; read-only after.
  std::vector<llama_token> prompt;
  std::unique_ptr<Sampler> sampler;
  int max_tokens = -1;  // < 0: no limit
  int n_ctx = 0;        // prompt and answer together at most this (<= the slot's size)
  const std::atomic<bool>* cancel = nullptr;

  // The consumer wants no more tokens (stop string, callback said stop).
  std::atomic<bool> stop{false};

  // Output, guarded by mu; cv is notified on every change.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<llama_token> tokens;
  bool done = false;
  std::string finish_reason;  // "stop" (end of sequence), "length", "cancelled"
  std::optional<Error> error;
  int cached_tokens = 0;  // prompt tokens reused
  std::optional<std::chrono::steady_clock::time_point> prompt_done;
};

// Counts of generation steps, shared by the engine's batchers.
struct BatchCounters {
  std::atomic<uint64_t> steps{0}, tokens{0};
};

class Batcher {
 public:
  struct Options {
    int parallel = 4;          // slots
    uint32_t slot_ctx = 4096;  // tokens per slot
    int threads = 1;
    std::string model_name;                   // for messages
    std::shared_ptr<BatchCounters> counters;  // may be null
  };
  Batcher(llama_model* model, Options options, std::shared_ptr<ComputeThread> compute);
  ~Batcher();  // stops the loop; jobs still there end as "cancelled"
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Creates the context and starts the loop ("context-failed").
  Status Start();
  // Queues `job`; its tokens and end arrive through the job.
  void Submit(std::shared_ptr<DecodeJob> job);

 private:
  struct Slot;
  void Loop();
  void Admit();  // under mu_
  void Finish(Slot& s, const char* reason, std::optional<Error> error = std::nullopt);
  // Decodes `batch` for `jobs`; false (and the jobs failed) when it did not succeed.
  int Decode(const llama_batch& batch, const std::vector<Slot*>& slots);
  static bool AbortDecode(void* self);
  bool Wanted(const DecodeJob& j) const;

  llama_model* model_;
  const llama_vocab* vocab_;
  Options o_;
  std::shared_ptr<ComputeThread> compute_;
  llama_context* ctx_ = nullptr;
  std::vector<Slot> slots_;
  uint64_t clock_ = 0;                       // for least-recently-used
  std::vector<const DecodeJob*> in_flight_;  // the jobs of the decode running

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<DecodeJob>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace modelseal::engine
