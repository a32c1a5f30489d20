// server: modelseal's HTTP API. This module starts with the inference APIs that
// existing tools already speak:
//   Ollama:  GET /api/version, /api/tags, /api/ps; POST /api/chat, /api/generate,
//            /api/show; DELETE /api/delete (streaming NDJSON as Ollama does)
//   OpenAI:  GET /v1/models; POST /v1/chat/completions, /v1/completions (SSE or not)
// Requests are validated and refused with each API's own error shape, and so is
// every error of the HTTP front (src/httpd: strict framing, deadlines, connection
// caps; bodies larger than ServerOptions::max_body_bytes get 413 while they are read,
// whatever the transfer encoding). Chat bodies are JSON whatever the Content-Type
// says. A prompt that does not fit the model's context is refused with 400 before
// anything streams (OpenAI code context_length_exceeded). "NAME" and "NAME:latest"
// name the same model, as in Ollama.
//
// Every model is shown with its modelseal facts (measured into PCR15 or not,
// SHA-256/SHA-384, PCR15 after); a model loaded from a plain file is "measured":
// false everywhere.
//
// Thread-safety: one Server serves many requests at once (a worker pool of
// ServerOptions::threads); a request whose client hangs up stops its generation at
// the engine's next graph node, streaming or not (httpd's client_gone is the
// engine's cancel flag). Stop may be called from any thread but a handler's.
// Start fails with httpd's errors ("address-in-use", "insecure-listen", "tls-config").
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/error.h"
#include "engine/engine.h"
#include "httpd/httpd.h"

namespace modelseal::server {

class Product;     // server/product.h
class TokenStore;  // server/tokens.h

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 11434;  // 0: any free port (see Server::port())
  size_t max_body_bytes = 8u << 20;
  int threads = 32;                    // requests handled at once (more wait in a queue)
  std::optional<httpd::TlsFiles> tls;  // serve HTTPS with these
  bool allow_insecure_http = false;    // plain HTTP on a non-loopback address
  std::string version;                 // reported by /api/version; empty: modelseal's own

  // The product (modelseal up / serve --config). With `product`, the /ms/v1 API is
  // served (server/product_http.h). With `tokens`, every request needs a bearer token
  // whose role may make it, checked on the request head before any body byte: chat,
  // generation and unloading need the consumer role, listings any role;
  // /api/version, GET /ms/v1/health, /ms/v1/openapi.json and the web UI's files need
  // none. Both outlive the Server.
  Product* product = nullptr;
  TokenStore* tokens = nullptr;
  std::string web_root;   // the built web UI (index.html, assets/); empty: none
  std::string spool_dir;  // where uploads are spooled (anonymous files); empty: $TMPDIR
};

// "HOST:PORT", ":PORT" (127.0.0.1) or "PORT" (httpd::ParseListen).
Result<std::pair<std::string, int>> ParseListen(const std::string& addr);

class Server {
 public:
  Server(engine::Engine& engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the socket (so port() is known) and serves on background threads.
  Status Start();
  // Start, then blocks until Stop() (from another thread).
  Status Run();
  void Stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelseal::server
