#include "server/jobs.h"

#include <malloc.h>

#include <algorithm>
#include <ctime>
#include <mutex>

#include "common/bytes.h"
#include "common/log.h"
#include "common/ossl.h"

namespace modelseal::server {

using nlohmann::json;

namespace {

constexpr size_t kMaxEvents = 2000;
constexpr auto kProgressEvery = std::chrono::milliseconds(100);

std::string CodeName(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidArgument:
      return "invalid-argument";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kAlreadyExists:
      return "already-exists";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kIntegrity:
      return "integrity";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kPermissionDenied:
      return "permission-denied";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

}  // namespace

json ErrorJson(const Error& e) {
  return {{"code", CodeName(e.code)},
          {"module", e.module},
          {"reason", e.reason},
          {"message", e.message}};
}

std::string JobStateName(Job::State s) {
  switch (s) {
    case Job::State::kRunning:
      return "running";
    case Job::State::kSucceeded:
      return "succeeded";
    case Job::State::kFailed:
      return "failed";
    case Job::State::kCancelled:
      return "cancelled";
  }
  return "running";
}

Job::State Job::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

void Job::Add(json event) {
  // Called with mu_ held.
  event["seq"] = ++seq_;
  event["time"] = IsoTime(std::chrono::system_clock::now());
  events_.push_back(std::move(event));
  while (events_.size() > kMaxEvents) events_.pop_front();
  changed_.notify_all();
}

ProgressFn Job::Progress() {
  return [this](const ProgressEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    const auto started =
        stage_started_.try_emplace(e.stage, std::chrono::system_clock::now(), now).first->second;
    json p = {{"stage", e.stage},
              {"done", e.done},
              {"total", e.total},
              {"unit", e.unit},
              {"detail", e.detail},
              {"finished", e.finished},
              {"started", IsoTime(started.first)},
              {"seconds", std::chrono::duration<double>(now - started.second).count()}};
    const bool first = !stages_.count(e.stage);
    stages_[e.stage] = p;
    auto& last = last_progress_[e.stage];
    if (!first && !e.finished && now - last < kProgressEvery) return;
    last = now;
    p["type"] = "progress";
    Add(std::move(p));
  };
}

void Job::AnnotateFailure(json detail) {
  std::lock_guard<std::mutex> lock(mu_);
  failure_detail_ = std::move(detail);
}

json Job::Summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  json stages = json::object();
  for (const auto& [k, v] : stages_) stages[k] = v;
  return {{"id", id_},
          {"kind", kind_},
          {"state", JobStateName(state_)},
          {"created", IsoTime(created_)},
          {"finished", state_ == State::kRunning ? json(nullptr) : json(IsoTime(finished_))},
          {"request", request_},
          {"result", result_},
          {"error", error_},
          {"last_seq", seq_},
          {"stages", stages}};
}

std::vector<json> Job::EventsAfter(uint64_t after, std::chrono::milliseconds wait,
                                   bool* finished) const {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, wait, [&] { return seq_ > after || state_ != State::kRunning; });
  std::vector<json> out;
  for (const auto& e : events_) {
    if (e["seq"].get<uint64_t>() > after) out.push_back(e);
  }
  *finished = state_ != State::kRunning;
  return out;
}

void ConfigureMalloc() {
  // * Arenas. Every job runs on a new thread, and glibc gives threads their own
  //   malloc arenas (up to 8 per core). A load allocates a model's vocabulary and
  //   metadata on its job thread and frees it at unload from another; spread over
  //   many arenas, what is freed stays fragmented and the server's resident memory
  //   crept up with every load and unload (by 20-40 MiB over 12 here). Four arenas
  //   keep it level. glibc fixes its limit once a ninth arena exists, so servers
  //   call this before their threads.
  // * Thresholds. Left dynamic, glibc raises its mmap threshold to the size of the
  //   largest mmapped block freed so far and its trim threshold to twice that, so
  //   later buffers of that size come from the arenas, and an arena other than the
  //   main one keeps what is freed at its top, resident (malloc_trim does not return
  //   it). A publish that followed a load kept about 17 MiB more each time (174 MiB
  //   model), and the idle server held 29-53 MiB of heap in the 1 GiB benchmark.
  //   Fixed values: blocks of up to 32 MiB come from the arenas, and an arena's free
  //   top beyond 8 MiB goes back to the kernel (7-11 MiB of idle heap).
  static std::once_flag once;
  std::call_once(once, [] {
    if (mallopt(M_ARENA_MAX, 4) != 1 || mallopt(M_MMAP_THRESHOLD, 32 << 20) != 1 ||
        mallopt(M_TRIM_THRESHOLD, 8 << 20) != 1) {
      log::Line("modelseal: could not configure malloc (arenas, thresholds)");
    }
  });
}

JobManager::JobManager() {
  ConfigureMalloc();
}

JobManager::~JobManager() {
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, job] : jobs_) job->Cancel();
    threads.swap(threads_);
  }
  for (auto& [job, t] : threads) t.join();
}

std::shared_ptr<Job> JobManager::Start(const std::string& kind, json request, Work work) {
  auto job = std::make_shared<Job>();
  uint8_t rnd[8];
  if (!RandomBytes(rnd, sizeof(rnd)).ok()) std::fill(std::begin(rnd), std::end(rnd), 0);
  job->id_ = kind + "-" + ToHex(rnd);
  job->kind_ = kind;
  job->request_ = std::move(request);
  job->created_ = std::chrono::system_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  // Threads of finished jobs are joined here, so they do not pile up.
  std::erase_if(threads_, [](auto& entry) {
    if (entry.first->state() == Job::State::kRunning) return false;
    entry.second.join();
    return true;
  });
  jobs_[job->id_] = job;
  log::Line("modelseal: job %s started", job->id_.c_str());
  threads_.emplace_back(job, [job, work = std::move(work)]() mutable {
    Result<json> r = [&] {
      const Work w = std::move(work);  // what it holds is freed before the trim below
      return w(*job);
    }();
    // A publish or a load frees hundreds of MiB of transfer buffers, allocated on
    // its worker threads; glibc keeps such memory in the threads' arenas, resident,
    // for reuse. Hand it back before the job counts as done.
    malloc_trim(0);
    std::lock_guard<std::mutex> l(job->mu_);
    job->finished_ = std::chrono::system_clock::now();
    const double seconds = std::chrono::duration<double>(job->finished_ - job->created_).count();
    if (r.ok()) {
      job->state_ = Job::State::kSucceeded;
      job->result_ = std::move(*r);
      job->Add({{"type", "succeeded"}, {"result", job->result_}});
      log::Line("modelseal: job %s succeeded in %.2f s", job->id_.c_str(), seconds);
      return;
    }
    json err = ErrorJson(r.error());
    if (job->failure_detail_.is_object()) err.update(job->failure_detail_);
    job->error_ = err;
    const bool cancelled = r.error().code == ErrorCode::kCancelled || job->cancel_;
    job->state_ = cancelled ? Job::State::kCancelled : Job::State::kFailed;
    job->Add({{"type", cancelled ? "cancelled" : "failed"}, {"error", err}});
    log::Line("modelseal: job %s %s after %.2f s: %s", job->id_.c_str(),
              cancelled ? "cancelled" : "failed", seconds, r.error().ToString().c_str());
  });
  return job;
}

std::shared_ptr<Job> JobManager::Get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Job>> JobManager::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Job>> out;
  for (const auto& [id, job] : jobs_) out.push_back(job);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a->created_ > b->created_; });
  return out;
}

std::string IsoTime(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace modelseal::server
