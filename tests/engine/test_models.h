// Test helpers for the engine's tests: a scratch directory and small test models.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "engine/engine.h"

namespace modelseal::engine {

// A directory under the system's temporary directory, removed with its contents.
class TestDir {
 public:
  explicit TestDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("ms-" + name + "-" + std::to_string(getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The smallest model that still runs every code path (about 4 MB, mostly the
// 32000-token vocabulary's embeddings).
inline TestModelOptions TinyModel() {
  TestModelOptions o;
  o.layers = 1;
  o.dim = 32;
  o.heads = 2;
  o.context_length = 512;
  return o;
}

}  // namespace modelseal::engine
