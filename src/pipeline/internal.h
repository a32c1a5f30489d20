// Pipeline internals shared by its sources; not part of the public interface.
#pragma once

#include <atomic>
#include <mutex>
#include <span>
#include <string>

#include "common/bytes.h"
#include "common/io.h"
#include "engine/engine.h"
#include "pipeline/pipeline.h"

namespace modelseal::pipeline {

// The only maker of engine::Measurement: called right after Machine::Measure.
class MeasurementIssuer {
 public:
  static engine::Measurement Issue(std::span<const uint8_t> sha384,
                                   std::span<const uint8_t> pcr15_after) {
    return engine::Measurement(ToHex(sha384), ToHex(pcr15_after));
  }
};

inline Error Fail(ErrorCode code, std::string reason, std::string message) {
  return MakeError(code, "pipeline", std::move(reason), std::move(message));
}

// `e` with "<step>: " before its message (module and reason kept).
Error AtStep(const std::string& step, Error e);

Error Cancelled();
inline bool IsCancelled(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

// A ByteSource that fails with "cancelled" once `cancel` is set (stops a seal).
class CancellableSource final : public ByteSource {
 public:
  CancellableSource(const ByteSource& inner, const std::atomic<bool>* cancel)
      : inner_(inner), cancel_(cancel) {}
  uint64_t size() const override { return inner_.size(); }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override {
    if (IsCancelled(cancel_)) return Cancelled();
    return inner_.ReadAt(offset, len, scratch);
  }

 private:
  const ByteSource& inner_;
  const std::atomic<bool>* cancel_;
};

}  // namespace modelseal::pipeline
