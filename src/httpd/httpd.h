// httpd: modelseal's inbound HTTP/1.1 front (the counterpart of the outbound net/),
// used by `modelseal serve` and `modelseal kms serve`.
//
// What it promises:
// * Event-driven: one I/O thread (epoll) owns every socket; a slow or idle client
//   costs a file descriptor and a few KiB, never a worker. Handlers run on a worker
//   pool (ServerOptions::workers), never on the I/O thread.
// * Deadlines: the request head must be complete within head_timeout of its first
//   byte (of the accept, for a connection's first request; TLS handshake included),
//   the whole body within the route's body_timeout, an idle keep-alive connection is
//   closed after idle_timeout, and a client that reads nothing of a response for
//   send_timeout is dropped. Caps on connections, on connections per client address
//   and on requests per connection; listen backlog 511; never SO_REUSEPORT, so a
//   second server on the same address fails to start ("... is already in use").
// * Strict RFC 9112 framing: anything ambiguous (duplicate or malformed
//   Content-Length, Content-Length with Transfer-Encoding, whitespace before a colon,
//   obs-fold, bare CR or LF, control bytes, bad targets, a missing or repeated Host on
//   HTTP/1.1) is answered 400 and the connection closed; a transfer coding other than
//   exactly "chunked" gets 501, an oversized head 431, a body over the route's limit
//   413 (enforced while reading, for every transfer encoding: memory stays flat), a
//   head or body deadline 408. Every such answer is rendered by the server's
//   ErrorRenderer, so it has the server's own error shape. Pipelined requests are
//   answered in order; HTTP/1.0 and keep-alive follow RFC 9112 section 9.3.
// * The head hook sees each request's head before any body byte is read (and before
//   "100 Continue" is sent) and may refuse it.
// * A request's client_gone flag is set when the peer hangs up (FIN or RST) while its
//   handler runs, even when nothing is being written; bytes of a pipelined next
//   request are not a hang-up. A client that half-closes its sending side counts as
//   gone (as in Go's net/http, which Ollama uses).
// * TLS (OpenSSL, TLS 1.2 and 1.3) when ServerOptions::tls is set. Plain HTTP on an
//   address that is not loopback is refused unless allow_insecure_http is set.
//
// Thread-safety: Server::Start/Stop may be called from any thread (Stop is
// idempotent and also run by the destructor); a Responder belongs to the worker
// running its handler. Handlers, the hook and the renderer are called concurrently
// and must be thread-safe; the hook and the renderer run on the I/O thread and must
// not block.
//
// Failures of Start (module "httpd"): "address-in-use" (kUnavailable),
// "bind-failed"/"listen-failed" (kUnavailable, errno text), "bad-address"
// (kInvalidArgument), "insecure-listen" (kPermissionDenied), "tls-config"
// (kInvalidArgument: the certificate or key cannot be loaded or do not match).
#pragma once

#include <signal.h>

#include <any>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace modelseal::httpd {

struct Header {
  std::string name;   // lower-case
  std::string value;  // without surrounding whitespace
};
using HeaderList = std::vector<Header>;

// One request as the handler sees it. Owned by the server; valid until the handler
// returns.
class Request {
 public:
  std::string method;     // as sent, e.g. "POST" (case-sensitive per RFC 9110)
  std::string target;     // the raw request-target, e.g. "/api/chat?x=1"
  std::string path;       // the target's path, still percent-encoded, e.g. "/ms/v1/jobs/a%20b"
  std::string raw_query;  // after '?', undecoded; empty when none
  std::vector<std::pair<std::string, std::string>> query;   // decoded ('+' is a space)
  int version_minor = 1;                                    // HTTP/1.<minor>
  HeaderList headers;                                       // in arrival order
  std::vector<std::pair<std::string, std::string>> params;  // route {name}s, decoded
  std::string route;  // the matched route pattern, e.g. "/ms/v1/jobs/{id}"; empty: none
  std::string peer;   // client address, "127.0.0.1" or "::1"
  int peer_port = 0;
  bool tls = false;

  // The body, when the route keeps it in memory.
  std::string body;
  // The body, when the route spools it to a file: an anonymous temporary file (no
  // name; gone when closed) positioned at 0, owned by the server and closed after the
  // handler returns. -1 when the body is in memory.
  int body_fd = -1;
  uint64_t body_size = 0;  // bytes of body received (either way)

  // Set by the server when the client hangs up while the handler runs. Pass it as a
  // cancel flag; poll it; never write it.
  const std::atomic<bool>& client_gone() const { return *gone_; }

  // Whatever the head hook wants to hand to the handler (e.g. a principal).
  std::any context;

  // The first value of header `lower_name`, or nullopt.
  std::optional<std::string_view> Header(std::string_view lower_name) const;
  // Every value of header `lower_name`, in order (duplicates visible).
  std::vector<std::string_view> HeaderValues(std::string_view lower_name) const;
  // The first decoded query parameter `name`, or nullopt.
  std::optional<std::string_view> Query(std::string_view name) const;
  // The decoded route parameter `name` ("" when the route has none of that name).
  std::string_view Param(std::string_view name) const;

  Request();
  ~Request();
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

 private:
  friend class Connection;
  std::shared_ptr<std::atomic<bool>> gone_;
};

// A whole answer.
struct Response {
  int status = 200;
  std::string content_type;  // empty: no Content-Type
  std::string body;
  HeaderList headers;  // extra headers; never Content-Length, Transfer-Encoding, Connection
};

// An answer of the front itself (or a refusal by the hook), before rendering.
struct HttpError {
  HttpError() = default;
  HttpError(int s, std::string m, std::string c = {}, HeaderList h = {})
      : status(s), message(std::move(m)), code(std::move(c)), headers(std::move(h)) {}

  int status = 400;
  std::string message;  // a sentence for humans
  std::string code;     // machine-readable, e.g. "UnrecognizedClientException"; may be empty
  HeaderList headers;   // extra headers for the answer (e.g. Allow on 405)
};

// Turns an HttpError into the server's own error shape. `req` holds what was parsed
// before the error (method/path may be empty for an unparseable head). Runs on the
// I/O thread.
using ErrorRenderer = std::function<Response(const HttpError& error, const Request& req)>;

// The handler's side of one exchange. Answer exactly once: Send, or BeginStream then
// Write... then End. A handler that returns without answering gets a rendered 500; one
// that returns mid-stream is ended as if it had called End.
class Responder {
 public:
  virtual ~Responder() = default;
  // Sends a whole answer. Returns false when the client is gone.
  virtual bool Send(Response response) = 0;
  // Sends the head of a streamed answer (chunked on HTTP/1.1, close-delimited on 1.0).
  virtual bool BeginStream(int status, std::string content_type, HeaderList headers = {}) = 0;
  // Queues `data` (one chunk). Blocks while more than ServerOptions::stream_buffer
  // bytes are waiting to be sent (back-pressure). Returns false, at once, when the
  // client is gone or the server stops; the handler should then stop producing.
  virtual bool Write(std::string_view data) = 0;
  // Ends a streamed answer.
  virtual bool End() = 0;
  // Renders `error` with the server's renderer and sends it.
  virtual bool SendError(const HttpError& error) = 0;
};

using Handler = std::function<void(Request& req, Responder& res)>;

// Refuses a request from its head, before its body is read: return an HttpError to
// answer it (then the connection is closed), nullopt to go on. Runs on the I/O thread
// after routing (req.route/params are set; body empty), so it must be quick.
using HeadHook = std::function<std::optional<HttpError>(Request& head)>;

struct RouteOptions {
  // Largest accepted body; 0: ServerOptions::max_body_bytes.
  uint64_t max_body_bytes = 0;
  // Deadline for receiving the whole body; 0: ServerOptions::body_timeout.
  std::chrono::milliseconds body_timeout{0};
  // Non-empty: the body is written to an anonymous temporary file in this directory
  // (O_TMPFILE, or a file unlinked at once where the file system lacks it) instead of
  // memory; the handler gets Request::body_fd and body_size.
  std::string spool_dir;
};

// Method + path patterns. A pattern is '/'-separated segments, each literal or
// "{name}" (one non-empty segment), the last may be "{name...}" (the rest of the
// path, possibly empty). Literal segments win over parameters. A path that matches
// no pattern gets 404, one that matches only for other methods 405 with Allow. HEAD
// is served by the GET route (without the body). Not thread-safe: fill it before
// Server::Start.
class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler, RouteOptions options = {});
  void Get(std::string pattern, Handler h, RouteOptions o = {}) {
    Add("GET", std::move(pattern), std::move(h), std::move(o));
  }
  void Post(std::string pattern, Handler h, RouteOptions o = {}) {
    Add("POST", std::move(pattern), std::move(h), std::move(o));
  }
  void Delete(std::string pattern, Handler h, RouteOptions o = {}) {
    Add("DELETE", std::move(pattern), std::move(h), std::move(o));
  }

  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
    RouteOptions options;
  };
  struct Match {
    const Route* route = nullptr;  // null: no route for this method
    std::vector<std::pair<std::string, std::string>> params;
    std::vector<std::string> allowed;  // methods that match the path (for 405)
  };
  // Matches a percent-encoded path ("/a/b%20c"); parameters come back decoded.
  Match Find(std::string_view method, std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

struct TlsFiles {
  std::string cert_file;  // PEM, leaf first then intermediates
  std::string key_file;   // PEM private key
};

struct ServerOptions {
  std::string host = "127.0.0.1";  // an address or a name that resolves to one
  int port = 0;                    // 0: any free port (see Server::port)
  // Names the program in messages: "... is already in use (another <name>?)".
  std::string name = "modelseal";
  std::optional<TlsFiles> tls;
  bool allow_insecure_http = false;  // plain HTTP on a non-loopback address

  int workers = 16;         // handler threads
  size_t max_queued = 256;  // requests waiting for a worker; more: 503
  size_t max_connections = 512;
  size_t max_connections_per_client = 64;  // per peer address
  size_t max_requests_per_connection = 1000;
  int backlog = 511;

  size_t max_head_bytes = 32 * 1024;  // request line + headers
  size_t max_headers = 100;
  uint64_t max_body_bytes = 1 << 20;  // default for routes that do not say
  size_t stream_buffer = 256 * 1024;  // queued response bytes before Write blocks

  std::chrono::milliseconds head_timeout{10000};
  std::chrono::milliseconds body_timeout{60000};
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds send_timeout{60000};  // no byte of the answer taken
  // Stop(): how long running handlers may finish before their client_gone is set.
  std::chrono::milliseconds drain_timeout{2000};
};

class Server {
 public:
  Server(ServerOptions options, Router router, ErrorRenderer renderer, HeadHook hook = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the I/O thread and the workers. Fails as listed above.
  Status Start();
  // Stops accepting, closes idle connections, lets running handlers finish for
  // drain_timeout, then sets their client_gone and waits for them; joins every
  // thread. Safe from any thread but a handler's; idempotent.
  void Stop();
  int port() const;  // the bound port, after Start

  struct Stats {
    uint64_t connections = 0;  // open now
    uint64_t accepted = 0, refused = 0, requests = 0;
  };
  Stats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "HOST:PORT", "[V6]:PORT", ":PORT" (127.0.0.1) or "PORT" -> host and port; fails with
// "invalid-listen-address" (kInvalidArgument).
Result<std::pair<std::string, int>> ParseListen(const std::string& addr);

// True for 127.0.0.0/8, ::1 and names that resolve only to those.
bool IsLoopback(const std::string& host);

// SIGINT/SIGTERM for a CLI: construct it in main's thread before any thread starts
// (it blocks both; every later thread inherits the mask), then Wait() returns the
// signal that arrived (sigwait: nothing runs in a signal handler, so Server::Stop is
// called from an ordinary thread).
class StopSignals {
 public:
  StopSignals();
  int Wait();

 private:
  sigset_t set_;
};

}  // namespace modelseal::httpd
