// The engine's compute thread: every llama_decode of every model runs on it, one at a
// time, in the order requests ask.
//
// Why one thread: llama.cpp's CPU backend (built with OpenMP) keeps a team of worker
// threads per calling thread, and its per-node barriers spin only while the process
// has no more OpenMP threads than cores. Decoding from each HTTP worker thread made a
// team per thread; with more threads than cores every barrier fell back to a futex
// sleep, and two decodes at once fought over the same cores. One caller means one
// team, barriers that spin, and whole cores for each decode; concurrent requests
// interleave token by token.
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

  // llama_decode(ctx, batch) on the compute thread.
  int Decode(llama_context* ctx, const llama_batch& batch) {
    return Run([&] { return llama_decode(ctx, batch); });
  }

  // Jobs waiting for the thread (not counting the one running).
  size_t pending() const;

 private:
  struct Job;
  void Loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the rest is ready
};

}  // namespace modelseal::engine
