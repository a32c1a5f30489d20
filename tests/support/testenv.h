// Test support shared by the aws, store, hub and product tests and the storage benchmark:
// child processes (node scripts such as s3rver), a tiny loopback HTTP/1.1 server
// for imitating services, and a TCP proxy that cuts connections to inject faults.
// Everything listens on 127.0.0.1 on a kernel-chosen free port.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/error.h"

namespace modelseal::testenv {

std::string SourceDir();
// A fresh empty directory under $TMPDIR; removed by the caller (or left for debugging).
std::string MakeTempDir(const std::string& tag);
void RemoveTree(const std::string& path);

// Runs `node <source-relative script> args...` to completion; returns stdout.
Result<std::string> RunNode(const std::string& script, const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env = {});

// A child process whose stdout's first line is read at start. Terminated (SIGTERM,
// then SIGKILL) and reaped on destruction.
class ChildProcess {
 public:
  static Result<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv);
  ~ChildProcess();
  const std::string& first_line() const { return first_line_; }

 private:
  void Reap();
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::string first_line_;
  std::thread drain_;  // forwards the rest of stdout to stderr
};

// s3rver over a temporary directory; credentials S3RVER/S3RVER.
class S3rver {
 public:
  static Result<std::unique_ptr<S3rver>> Start();
  ~S3rver();
  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& directory() const { return dir_; }

 private:
  std::unique_ptr<ChildProcess> proc_;
  std::string dir_;
  int port_ = 0;
};

struct HttpRequestIn {
  std::string method;
  std::string target;                          // path?query as received
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};
struct HttpResponseOut {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set: send the headers and only this many body bytes, then close.
  long cut_after = -1;
  // For HEAD: the Content-Length to announce (body is not sent).
  long head_length = -1;
  // When > 0: send the body at about this many bytes per second (a slow link).
  long rate_bytes_per_s = 0;
};

// What an object server answers for `data` (ETag `etag`): HEAD gives its length; a GET
// with "Range: bytes=A-B" gives 206 and those bytes.
HttpResponseOut RangedObject(const HttpRequestIn& r, std::string_view data,
                             const std::string& etag);

// A listening socket on 127.0.0.1 (any free port) that serves each connection on its
// own thread. The destructor stops accepting, shuts every connection down and joins.
class LoopbackListener {
 public:
  using ServeFn = std::function<void(int fd)>;
  explicit LoopbackListener(ServeFn serve);
  ~LoopbackListener();
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;
  int port() const { return port_; }

 private:
  ServeFn serve_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<int> fds_;
  std::thread acceptor_;  // last: starts once the rest is ready
};

// A loopback HTTP/1.1 server (keep-alive, Content-Length bodies). The handler is
// called on the connection's thread; it must be thread-safe.
class HttpServer {
 public:
  using Handler = std::function<HttpResponseOut(const HttpRequestIn&)>;
  explicit HttpServer(Handler handler);
  int port() const { return listener_.port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }

 private:
  void Serve(int fd);
  Handler handler_;
  LoopbackListener listener_;  // last: stopped before the handler goes
};

// A TCP proxy 127.0.0.1:port -> 127.0.0.1:upstream. The first `faulty_connections`
// connections are cut (both sides closed) once `cut_after_bytes` bytes have gone
// in the chosen direction. Later connections pass untouched.
class FaultProxy {
 public:
  enum class Direction { kDownstream, kUpstream };  // server->client, client->server
  FaultProxy(int upstream_port, int faulty_connections, long cut_after_bytes, Direction dir);
  int port() const { return listener_.port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  int connections() const { return connections_.load(); }
  int cuts() const { return cuts_.load(); }

 private:
  void Pump(int client);
  int upstream_port_;
  int faulty_;
  long cut_after_;
  Direction dir_;
  std::atomic<int> connections_{0};
  std::atomic<int> cuts_{0};
  LoopbackListener listener_;  // last: stopped before the rest goes
};

}  // namespace modelseal::testenv
