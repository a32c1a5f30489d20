// ComputeThread: a FIFO of decode jobs served by one thread (see compute.h).
#include "engine/compute.h"

#include <algorithm>

namespace modelseal::engine {

struct ComputeThread::Job {
  const std::function<int()>* fn = nullptr;
  int rc = 0;
  bool done = false;
  std::condition_variable cv;
};

ComputeThread::ComputeThread()
    : cores_(std::max(1, static_cast<int>(std::thread::hardware_concurrency()))),
      free_cores_(cores_),
      thread_([this] { Loop(); }) {}

ComputeThread::~ComputeThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

int ComputeThread::Run(const std::function<int()>& fn) {
  Job job;
  job.fn = &fn;
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(&job);
  cv_.notify_one();
  job.cv.wait(lock, [&] { return job.done; });
  return job.rc;
}

int ComputeThread::RunDecode(int threads, const std::function<int()>& fn) {
  const int n = std::clamp(threads, 1, cores_);
  const auto decode = [&] {
    TakeCores(n);
    const int rc = fn();
    GiveCores(n);
    return rc;
  };
  if (threads <= 1) return decode();
  return Run(decode);
}

void ComputeThread::TakeCores(int n) {
  std::unique_lock<std::mutex> lock(mu_);
  cores_cv_.wait(lock, [&] { return free_cores_ >= n; });
  free_cores_ -= n;
}

void ComputeThread::GiveCores(int n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_cores_ += n;
  }
  cores_cv_.notify_all();
}

size_t ComputeThread::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void ComputeThread::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    Job* job = queue_.front();
    queue_.pop_front();
    lock.unlock();
    const int rc = (*job->fn)();
    lock.lock();
    job->rc = rc;
    job->done = true;
    job->cv.notify_one();
  }
}

}  // namespace modelseal::engine
