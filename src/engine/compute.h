// Where the engine's llama_decode calls run.
//
// A decode with several threads runs on the one compute thread, one at a time, in the
// order requests ask: llama.cpp's CPU backend (built with OpenMP) keeps a team of
// worker threads per calling thread, and its per-node barriers spin only while the
// process has no more OpenMP threads than cores. Decoding from each HTTP worker thread
// made a team per thread; with more threads than cores every barrier fell back to a
// futex sleep, and two decodes at once fought over the same cores. One caller means
// one team, barriers that spin, and whole cores for each decode; concurrent requests
// interleave token by token.
//
// The callers are the models' batch loops (batch.h: one per model, each decoding all of
// that model's running requests together) and embedding requests; several models'
// decodes still take turns on the one team.
//
// A one-thread decode involves no OpenMP team, so it runs on the caller's own thread
// (no hand-off), and several run at once, one per core.
//
// Either way a budget of cores bounds the decode threads running at any moment.
#pragma once

#include <llama.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace modelseal::engine {

class ComputeThread {
 public:
  ComputeThread();
  ~ComputeThread();  // finishes queued work, then joins
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  // Runs `fn` on the compute thread after the work queued before it, and returns its
  // result. Blocks the caller until then.
  int Run(const std::function<int()>& fn);

  // Runs `fn`, a piece of work that keeps `threads` threads busy, as above: on the
  // caller's thread when that is one, else on the compute thread; within the budget
  // of cores either way.
  int RunDecode(int threads, const std::function<int()>& fn);

  // llama_decode(ctx, batch) with `threads` threads (the context's).
  int Decode(llama_context* ctx, const llama_batch& batch, int threads) {
    return RunDecode(threads, [&] { return llama_decode(ctx, batch); });
  }

  // Cores in the budget (the machine's).
  int cores() const { return cores_; }

  // Jobs waiting for the thread (not counting the one running).
  size_t pending() const;

 private:
  struct Job;
  void Loop();

  // Waits until `n` cores are free and takes them.
  void TakeCores(int n);
  void GiveCores(int n);

  const int cores_;
  int free_cores_;
  std::condition_variable cores_cv_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the rest is ready
};

}  // namespace modelseal::engine
