#include "common/log.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>

namespace modelseal::log {
namespace {

std::mutex& Mu() {
  static std::mutex mu;
  return mu;
}

std::deque<std::string>& Ring() {
  static std::deque<std::string> ring;
  return ring;
}

std::string UtcNow() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
  return buf;
}

}  // namespace

void Line(const char* format, ...) {
  char text[4096];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof(text), format, args);
  va_end(args);
  std::string kept = UtcNow() + " " + text;
  std::lock_guard<std::mutex> lock(Mu());
  std::fprintf(stderr, "%s\n", text);
  auto& ring = Ring();
  ring.push_back(std::move(kept));
  while (ring.size() > kKeptLines) ring.pop_front();
}

std::vector<std::string> Recent(size_t n) {
  std::lock_guard<std::mutex> lock(Mu());
  const auto& ring = Ring();
  const size_t from = ring.size() > n ? ring.size() - n : 0;
  return {ring.begin() + static_cast<std::ptrdiff_t>(from), ring.end()};
}

}  // namespace modelseal::log
