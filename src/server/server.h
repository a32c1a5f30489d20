// server: modelseal's HTTP API. This module starts with the inference APIs that
// existing tools already speak:
//   Ollama:  GET /api/version, /api/tags, /api/ps; POST /api/chat, /api/generate,
//            /api/show; DELETE /api/delete (streaming NDJSON as Ollama does)
//   OpenAI:  GET /v1/models; POST /v1/chat/completions, /v1/completions (SSE or not)
// Requests are validated and refused with each API's own error shape; bodies larger
// than ServerOptions::max_body_bytes are refused with 413.
//
// Every model is shown with its modelseal facts (measured into PCR15 or not,
// SHA-256/SHA-384, PCR15 after); a model loaded from a plain file is "measured":
// false everywhere.
//
// Thread-safety: one Server serves many requests at once (a thread pool of
// ServerOptions::threads); a streaming request whose client goes away stops its
// generation at the next token. Start/Stop from one thread.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "common/error.h"
#include "engine/engine.h"

namespace modelseal::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 11434;  // 0: any free port (see Server::port())
  size_t max_body_bytes = 8u << 20;
  int threads = 32;     // concurrent connections served
  std::string version;  // reported by /api/version; empty: modelseal's own
};

// "HOST:PORT", ":PORT" (127.0.0.1) or "PORT".
Result<std::pair<std::string, int>> ParseListen(const std::string& addr);

class Server {
 public:
  Server(engine::Engine& engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the socket (so port() is known) and serves on a background thread.
  Status Start();
  // Binds and serves on the calling thread until Stop() (from another thread).
  Status Run();
  void Stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelseal::server
