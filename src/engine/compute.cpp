// ComputeThread: a FIFO of decode jobs served by one thread (see compute.h).
#include "engine/compute.h"

namespace modelseal::engine {

struct ComputeThread::Job {
  const std::function<int()>* fn = nullptr;
  int rc = 0;
  bool done = false;
  std::condition_variable cv;
};

ComputeThread::ComputeThread() : thread_([this] { Loop(); }) {}

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
