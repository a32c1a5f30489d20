// A field of /proc/self/status ("VmRSS", "RssAnon", ...) in bytes; -1 if absent.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace modelseal::testenv {

inline long long ProcStatusBytes(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = field + ":";
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + key.size()) * 1024;
  }
  return -1;
}

}  // namespace modelseal::testenv
