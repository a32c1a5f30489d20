// ComputeThread: one thread runs every job, in the order they were queued.
#include "engine/compute.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "tests/support/wait.h"

namespace modelseal::engine {
namespace {

TEST(ComputeThreadTest, EveryJobRunsOnTheSameOtherThread) {
  ComputeThread ct;
  std::mutex mu;
  std::set<std::thread::id> ran_on;
  std::vector<std::thread> callers;
  std::atomic<int> sum{0};
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([&, i] {
      for (int j = 0; j < 50; ++j) {
        sum += ct.Run([&] {
          std::lock_guard<std::mutex> lock(mu);
          ran_on.insert(std::this_thread::get_id());
          return i;
        });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(sum.load(), 50 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7));
  ASSERT_EQ(ran_on.size(), 1u);
  EXPECT_NE(*ran_on.begin(), std::this_thread::get_id());
}

TEST(ComputeThreadTest, JobsNeverOverlapAndRunInQueueOrder) {
  ComputeThread ct;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  std::vector<int> order;
  // A long first job holds the thread while the others queue up behind it.
  std::atomic<bool> release{false}, started{false};
  std::thread first([&] {
    ct.Run([&] {
      started = true;
      (void)testenv::SpinUntil([&] { return release.load(); });
      return 0;
    });
  });
  ASSERT_TRUE(testenv::SpinUntil([&] { return started.load(); }));
  std::vector<std::thread> rest;
  for (int i = 0; i < 4; ++i) {
    // Queue one at a time so the queue order is known.
    rest.emplace_back([&, i] {
      ct.Run([&, i] {
        if (inside++ != 0) overlapped = true;
        order.push_back(i);
        --inside;
        return 0;
      });
    });
    ASSERT_TRUE(testenv::SpinUntil([&] { return ct.pending() == static_cast<size_t>(i + 1); }));
  }
  release = true;
  first.join();
  for (auto& t : rest) t.join();
  EXPECT_FALSE(overlapped);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST(ComputeThreadTest, OneThreadDecodesRunOnTheCallerSeveralOnTheComputeThread) {
  ComputeThread ct;
  std::thread::id one, several;
  ct.RunDecode(1, [&] {
    one = std::this_thread::get_id();
    return 0;
  });
  ct.RunDecode(2, [&] {
    several = std::this_thread::get_id();
    return 0;
  });
  EXPECT_EQ(one, std::this_thread::get_id());
  EXPECT_NE(several, std::this_thread::get_id());
}

// However many requests decode at once, the threads they keep busy never exceed the
// machine's cores.
TEST(ComputeThreadTest, DecodesStayWithinTheCores) {
  ComputeThread ct;
  std::atomic<int> busy{0}, most{0};
  const auto work = [&](int threads) {
    const int now = busy += threads;
    for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    busy -= threads;
    return 0;
  };
  std::vector<std::thread> callers;
  for (int i = 0; i < 3 * ct.cores() + 2; ++i) {
    const int threads = i % 3 == 0 ? std::min(2, ct.cores()) : 1;
    callers.emplace_back([&, threads] {
      for (int j = 0; j < 20; ++j) ct.RunDecode(threads, [&] { return work(threads); });
    });
  }
  for (auto& t : callers) t.join();
  // Never more than the cores; and a decode of two threads counts as two (on a machine
  // of two cores or more), so the count is of threads, not of decodes.
  EXPECT_LE(most.load(), ct.cores());
  EXPECT_GE(most.load(), std::min(2, ct.cores()));
}

TEST(ComputeThreadTest, ReturnsTheJobsResult) {
  ComputeThread ct;
  EXPECT_EQ(ct.Run([] { return 7; }), 7);
  EXPECT_EQ(ct.Run([] { return -2; }), -2);
}

}  // namespace
}  // namespace modelseal::engine
