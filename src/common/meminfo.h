// /proc/meminfo: the machine's memory, for the System view and for refusing a load
// that cannot fit before any key is requested.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace modelseal {

// The fields of /proc/meminfo's text ("MemAvailable:  1234 kB" lines) in bytes, by
// name (MemTotal, MemAvailable, Shmem, ...). Lines that do not parse are skipped.
std::map<std::string, uint64_t> ParseMemInfo(std::string_view text);

// This machine's /proc/meminfo; empty when it cannot be read.
std::map<std::string, uint64_t> ReadMemInfo();

}  // namespace modelseal
