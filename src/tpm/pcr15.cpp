#include "tpm/pcr15.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/file.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/clock.h"
#include "common/io.h"

namespace modelseal::tpm {

namespace {

using nlohmann::json;

constexpr char kLogName[] = "pcr15-log.json";

// An exclusive flock on <state_dir>/pcr15-log.lock for the scope.
class LogLock {
 public:
  static Result<LogLock> Acquire(const std::string& state_dir) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec) {
      return MakeError(ErrorCode::kIo, "tpm", "io", "create " + state_dir + ": " + ec.message());
    }
    const std::string path = state_dir + "/pcr15-log.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError("tpm", "open " + path, errno);
    if (::flock(fd, LOCK_EX) != 0) {
      const int e = errno;
      ::close(fd);
      return ErrnoError("tpm", "lock " + path, e);
    }
    return LogLock(fd);
  }
  LogLock(LogLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  LogLock(const LogLock&) = delete;
  ~LogLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
  }

 private:
  explicit LogLock(int fd) : fd_(fd) {}
  int fd_;
};

Error Corrupt(const std::string& path, const std::string& why) {
  return MakeError(ErrorCode::kIntegrity, "tpm", "log-corrupt",
                   "PCR15 log " + path + " is unreadable: " + why);
}

// Reads the log; a missing file is an empty log of boot {0,0}.
Result<std::optional<MeasurementLog>> LoadLog(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::optional<MeasurementLog>();
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MS_ASSIGN_OR_RETURN(MeasurementLog log, ParsePcr15Log(text, path));
  return std::optional<MeasurementLog>(std::move(log));
}

Status SaveLog(const std::string& path, const MeasurementLog& log) {
  const std::string text = Pcr15LogToJson(log);
  MS_ASSIGN_OR_RETURN(auto sink, AtomicFileSink::Create(path));
  MS_RETURN_IF_ERROR(
      sink->WriteAt(0, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  return sink->Commit();
}

// The log for the TPM's current boot; an earlier boot's log becomes empty.
Result<MeasurementLog> CurrentLog(const std::string& path, const BootId& boot, bool* stale) {
  MS_ASSIGN_OR_RETURN(auto loaded, LoadLog(path));
  *stale = false;
  if (loaded && loaded->boot == boot) return *loaded;
  if (loaded) *stale = true;
  MeasurementLog fresh;
  fresh.boot = boot;
  return fresh;
}

}  // namespace

Result<MeasurementLog> ParsePcr15Log(std::string_view text, const std::string& path) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corrupt(path, "not a JSON object");
  // Counts and times are JSON unsigned integers in range: get<>() would convert
  // 1e300 (undefined behaviour) or -1 (wraps) without complaint.
  bool in_range = true;
  auto uint = [&in_range](const json& v, uint64_t max) -> uint64_t {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > max) {
      in_range = false;
      return 0;
    }
    return v.get<uint64_t>();
  };
  constexpr uint64_t kU32 = 0xffffffffu, kU64 = ~uint64_t{0};
  MeasurementLog log;
  try {
    log.boot.reset_count = static_cast<uint32_t>(uint(j.at("reset_count"), kU32));
    log.boot.restart_count = static_cast<uint32_t>(uint(j.at("restart_count"), kU32));
    for (const auto& e : j.at("entries")) {
      MeasurementEntry m;
      m.model_name = e.at("model").get<std::string>();
      auto d = FromHex(e.at("sha384").get<std::string>());
      auto p = FromHex(e.at("pcr15_after").get<std::string>());
      if (!d || !p || d->size() != 48 || p->size() != 48) return Corrupt(path, "bad digest");
      m.sha384 = *d;
      m.pcr15_after = *p;
      m.time_ms = uint(e.at("time_ms"), kU64);
      if (e.contains("unloaded_ms")) m.unloaded_ms = uint(e.at("unloaded_ms"), kU64);
      log.entries.push_back(std::move(m));
    }
  } catch (const json::exception& ex) {
    return Corrupt(path, ex.what());
  }
  if (!in_range) return Corrupt(path, "a count or time is not an unsigned integer in range");
  return log;
}

std::string Pcr15LogToJson(const MeasurementLog& log) {
  json entries = json::array();
  for (const auto& e : log.entries) {
    json entry = {{"model", e.model_name},
                  {"sha384", ToHex(e.sha384)},
                  {"pcr15_after", ToHex(e.pcr15_after)},
                  {"time_ms", e.time_ms}};
    if (e.unloaded_ms != 0) entry["unloaded_ms"] = e.unloaded_ms;
    entries.push_back(std::move(entry));
  }
  json j = {{"format", "modelseal-pcr15-log/1"},
            {"reset_count", log.boot.reset_count},
            {"restart_count", log.boot.restart_count},
            {"entries", entries}};
  return j.dump(2) + "\n";
}

Bytes ReplayPcr15(const std::vector<Bytes>& digests) {
  Bytes pcr(48, 0);
  for (const auto& d : digests) {
    Bytes buf = pcr;
    buf.insert(buf.end(), d.begin(), d.end());
    SHA384(buf.data(), buf.size(), pcr.data());
  }
  return pcr;
}

Result<MeasurementEntry> ExtendPcr15(Tpm& tpm, const std::string& state_dir,
                                     std::span<const uint8_t> sha384,
                                     const std::string& model_name) {
  if (sha384.size() != 48) {
    return MakeError(ErrorCode::kInvalidArgument, "tpm", "bad-digest",
                     "a model measurement is a 48-byte SHA-384, got " +
                         std::to_string(sha384.size()) + " bytes");
  }
  MS_ASSIGN_OR_RETURN(LogLock lock, LogLock::Acquire(state_dir));
  const std::string path = state_dir + "/" + kLogName;
  MS_ASSIGN_OR_RETURN(BootId boot, tpm.ReadBootId());
  bool stale = false;
  MS_ASSIGN_OR_RETURN(MeasurementLog log, CurrentLog(path, boot, &stale));
  // A TPM silently ignores digests for banks it has not allocated: check first.
  MS_RETURN_IF_ERROR(tpm.ReadPcrs(Bank::kSha384));
  MS_RETURN_IF_ERROR(tpm.ExtendPcr(kModelPcr, Bank::kSha384, sha384));
  MS_ASSIGN_OR_RETURN(auto pcrs, tpm.ReadPcrs(Bank::kSha384));
  MeasurementEntry e{model_name, Bytes(sha384.begin(), sha384.end()), pcrs[kModelPcr], NowUnixMs()};
  log.entries.push_back(e);
  MS_RETURN_IF_ERROR(SaveLog(path, log));
  return e;
}

Result<MeasurementEntry> MarkUnloaded(Tpm& tpm, const std::string& state_dir,
                                      const std::string& model_name) {
  MS_ASSIGN_OR_RETURN(LogLock lock, LogLock::Acquire(state_dir));
  const std::string path = state_dir + "/" + kLogName;
  MS_ASSIGN_OR_RETURN(BootId boot, tpm.ReadBootId());
  bool stale = false;
  MS_ASSIGN_OR_RETURN(MeasurementLog log, CurrentLog(path, boot, &stale));
  for (auto it = log.entries.rbegin(); it != log.entries.rend(); ++it) {
    if (it->model_name != model_name || it->unloaded_ms != 0) continue;
    it->unloaded_ms = NowUnixMs();
    MS_RETURN_IF_ERROR(SaveLog(path, log));
    return *it;
  }
  return MakeError(ErrorCode::kNotFound, "tpm", "not-found",
                   "the PCR15 log of this boot has no loaded model named '" + model_name + "'");
}

Result<LogStatus> ReadPcr15Log(Tpm& tpm, const std::string& state_dir) {
  MS_ASSIGN_OR_RETURN(LogLock lock, LogLock::Acquire(state_dir));
  const std::string path = state_dir + "/" + kLogName;
  MS_ASSIGN_OR_RETURN(BootId boot, tpm.ReadBootId());
  LogStatus st;
  MS_ASSIGN_OR_RETURN(st.log, CurrentLog(path, boot, &st.discarded_stale));
  if (st.discarded_stale) MS_RETURN_IF_ERROR(SaveLog(path, st.log));
  std::vector<Bytes> digests;
  for (const auto& e : st.log.entries) digests.push_back(e.sha384);
  st.replayed = ReplayPcr15(digests);
  MS_ASSIGN_OR_RETURN(auto pcrs, tpm.ReadPcrs(Bank::kSha384));
  st.live = pcrs[kModelPcr];
  st.matches = st.replayed == st.live;
  return st;
}

}  // namespace modelseal::tpm
