// libFuzzer target: the PCR15 measurement log (src/tpm/pcr15.h): its parser, its
// writer and the replay of its digests.
//
// Asserts: what parses is written (Pcr15LogToJson) as text that parses to the
// same log and is written again identically (a fixpoint); every entry holds two
// 48-byte digests; the replay of the entries is 48 bytes, folds one entry at a
// time (SHA384(previous || digest)) and is 48 zero bytes for an empty log.
#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tpm/pcr15.h"

namespace {

using namespace modelseal;
using namespace modelseal::tpm;

bool SameEntry(const MeasurementEntry& a, const MeasurementEntry& b) {
  return a.model_name == b.model_name && a.sha384 == b.sha384 && a.pcr15_after == b.pcr15_after &&
         a.time_ms == b.time_ms && a.unloaded_ms == b.unloaded_ms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto log = ParsePcr15Log(text, "fuzz");
  if (!log.ok()) {
    if (log.error().reason != "log-corrupt") __builtin_trap();
    return 0;
  }
  const std::string written = Pcr15LogToJson(*log);
  auto again = ParsePcr15Log(written, "fuzz");
  if (!again.ok()) __builtin_trap();
  if (!(again->boot == log->boot) || again->entries.size() != log->entries.size()) {
    __builtin_trap();
  }
  std::vector<Bytes> digests;
  for (size_t i = 0; i < log->entries.size(); ++i) {
    const MeasurementEntry& e = log->entries[i];
    if (e.sha384.size() != 48 || e.pcr15_after.size() != 48) __builtin_trap();
    if (!SameEntry(e, again->entries[i])) __builtin_trap();
    digests.push_back(e.sha384);
  }
  if (Pcr15LogToJson(*again) != written) __builtin_trap();

  const Bytes replayed = ReplayPcr15(digests);
  if (replayed.size() != 48) __builtin_trap();
  if (digests.empty()) {
    if (replayed != Bytes(48, 0)) __builtin_trap();
  } else {
    Bytes buf = ReplayPcr15({digests.begin(), digests.end() - 1});
    buf.insert(buf.end(), digests.back().begin(), digests.back().end());
    Bytes folded(48);
    SHA384(buf.data(), buf.size(), folded.data());
    if (folded != replayed) __builtin_trap();
  }
  return 0;
}
