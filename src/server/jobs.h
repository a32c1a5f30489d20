// Long operations (publish, load) as jobs: an id, a stream of events, a result,
// cancel. A job runs on its own thread and outlives the client that started it;
// any number of clients may follow its events (each from a sequence number, so a
// client that reconnects misses nothing still held).
//
// Events are JSON objects {"seq", "time", "type", ...}: "progress" (a
// ProgressEvent: stage, done, total, unit, detail, finished), then exactly one of
// "succeeded" (with the result), "failed" (with the error) or "cancelled".
// Progress events of one stage are thinned to one per 100 ms (a stage's first
// and finished events are always kept); a job keeps its last 2,000 events.
//
// Thread-safety: everything here may be called from any thread. Destroying the
// manager cancels running jobs and waits for them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/progress.h"

namespace modelseal::server {

class Job {
 public:
  enum class State { kRunning, kSucceeded, kFailed, kCancelled };

  const std::string& id() const { return id_; }
  const std::string& kind() const { return kind_; }
  State state() const;
  // {"id", "kind", "state", "created", "finished", "request", "result", "error",
  //  "last_seq", "stages": {stage: last progress}}
  nlohmann::json Summary() const;
  // Events with seq > after; waits up to `wait` for one when there is none and
  // the job still runs. `finished` tells whether the job is over.
  std::vector<nlohmann::json> EventsAfter(uint64_t after, std::chrono::milliseconds wait,
                                          bool* finished) const;
  void Cancel() { cancel_ = true; }
  const std::atomic<bool>* cancel_flag() const { return &cancel_; }
  // Reports progress from the job's work (thread-safe, cheap).
  ProgressFn Progress();
  // Extra facts for a failure (e.g. the failing step and a policy explanation),
  // merged into the "failed" event's "error" object.
  void AnnotateFailure(nlohmann::json detail);

 private:
  friend class JobManager;
  void Add(nlohmann::json event);

  std::string id_, kind_;
  nlohmann::json request_;
  std::chrono::system_clock::time_point created_, finished_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  State state_ = State::kRunning;
  std::deque<nlohmann::json> events_;
  uint64_t seq_ = 0;
  nlohmann::json result_, error_, failure_detail_;
  std::map<std::string, nlohmann::json> stages_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_progress_;
  // When each stage's first event came (wall clock for "started", steady for "seconds").
  std::map<std::string,
           std::pair<std::chrono::system_clock::time_point, std::chrono::steady_clock::time_point>>
      stage_started_;
};

class JobManager {
 public:
  // Calls ConfigureMalloc (a fallback for servers that did not).
  JobManager();
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Runs `work` on a new thread. Its Result becomes the "succeeded" or "failed"
  // event; a failure whose code is kCancelled, or any failure after Cancel(),
  // becomes "cancelled". `request` is shown in summaries (no secrets).
  using Work = std::function<Result<nlohmann::json>(Job& job)>;
  std::shared_ptr<Job> Start(const std::string& kind, nlohmann::json request, Work work);
  std::shared_ptr<Job> Get(const std::string& id) const;
  std::vector<std::shared_ptr<Job>> List() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> threads_;
};

std::string JobStateName(Job::State s);

// Configures glibc's malloc for a long-running server, once (see jobs.cpp): at most
// four arenas, and fixed mmap (32 MiB) and trim (8 MiB) thresholds, so memory freed
// after a job goes back to the kernel. The arena cap is effective only before the
// process has nine threads that allocated: call it early in main.
void ConfigureMalloc();
// "2026-12-01T03:04:05.678Z": UTC with milliseconds, as every product API time.
std::string IsoTime(std::chrono::system_clock::time_point t);
// {"code", "module", "reason", "message"}: how the product API shows an Error.
nlohmann::json ErrorJson(const Error& e);

}  // namespace modelseal::server
