#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace modelseal {

unsigned DefaultThreads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

Status ParallelFor(uint64_t n, unsigned threads,
                   const std::function<Status(uint64_t, unsigned)>& fn) {
  if (threads == 0) threads = DefaultThreads();
  threads = static_cast<unsigned>(std::min<uint64_t>(threads, std::max<uint64_t>(n, 1)));
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  uint64_t first_bad = UINT64_MAX;
  std::optional<Error> first_error;

  auto worker = [&](unsigned w) {
    while (!failed.load(std::memory_order_relaxed)) {
      const uint64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      Status s = fn(i, w);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < first_bad) {
          first_bad = i;
          first_error = s.take_error();
        }
        failed.store(true, std::memory_order_relaxed);
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (unsigned w = 1; w < threads; ++w) pool.emplace_back(worker, w);
  worker(0);
  for (auto& t : pool) t.join();
  if (first_error) return std::move(*first_error);
  return Ok{};
}

}  // namespace modelseal
