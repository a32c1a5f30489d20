// httpd's server internals shared by server.cpp (listener, loop, workers) and
// conn.cpp (one connection's state machine and the handler's Responder). Internal.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "httpd/httpd.h"
#include "httpd/parse.h"
#include "httpd/tls.h"

namespace modelseal::httpd {

using Clock = std::chrono::steady_clock;

namespace internal {

// Handler threads with a bounded queue.
class WorkerPool {
 public:
  void Start(int threads, size_t max_queued);
  // False when the queue is full.
  bool Submit(std::function<void()> task);
  // Runs what is queued, then joins.
  void Shutdown();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t max_queued_ = 0;
  bool stop_ = false;
};

// The answer of one exchange, between the worker that produces it and the I/O thread
// that sends it.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::string out;           // bytes to send (before TLS)
  size_t off = 0;            // out[0, off) sent
  bool done = false;         // the answer is complete
  bool close_after = false;  // close the connection after it
  bool dead = false;         // the connection is gone: writes fail
  size_t pending() const { return out.size() - off; }
};

enum class Io { kOk, kAgain, kEof, kError };

}  // namespace internal

class Connection;

struct Server::Impl {
  ServerOptions opt;
  Router router;
  ErrorRenderer renderer;
  HeadHook hook;
  std::unique_ptr<internal::TlsContext> tls;

  int listen_fd = -1, epfd = -1, wake_fd = -1;
  int port = 0;
  std::thread io;
  internal::WorkerPool pool;
  std::mutex stop_mu;
  bool started = false, stopped = false;
  std::atomic<bool> stopping{false};

  // I/O thread only.
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns;
  std::unordered_map<std::string, size_t> per_client;
  uint64_t next_id = 2;  // 0: the listener, 1: the wake-up eventfd
  bool accept_paused = false;
  Clock::time_point accept_resume, next_sweep, drain_deadline;
  bool stop_seen = false;

  std::mutex notify_mu;
  std::vector<uint64_t> notified;

  std::atomic<uint64_t> accepted{0}, refused{0}, requests{0}, open{0};

  // Any thread: asks the I/O thread to look at connection `id` (new output, done).
  void Notify(uint64_t id);
  // The server's rendering of `e` (with e.headers added).
  Response Render(const HttpError& e, const Request& req) const;

  Status Bind();
  void Loop();
  void Accept();
  void Refuse(int fd);
  void Sweep(Clock::time_point now);
};

// One client connection; lives on the I/O thread.
class Connection {
 public:
  enum class St { kHandshake, kHead, kBody, kHandler, kClosing, kLinger, kClosed };

  Connection(Server::Impl* srv, uint64_t id, int fd, SSL* ssl, std::string peer, int peer_port);
  ~Connection();

  // Makes every possible step with what the socket offers.
  void Advance();
  // An epoll event.
  void OnEvent(uint32_t events);
  // Deadlines; `stop`: the server's drain time is over.
  void Sweep(Clock::time_point now, bool stop);
  // The server is stopping: close unless a handler is running.
  void OnStop();
  St state() const { return st_; }
  const std::string& peer() const { return peer_; }

 private:
  internal::Io Read(char* buf, size_t cap, size_t* n);
  internal::Io Write(const char* p, size_t len, size_t* n);
  internal::Io Flush();
  bool ProcessInput();  // true: made progress
  void OnHead();
  bool StoreBody(std::string_view data);
  void Dispatch();
  void EarlyError(HttpError e);
  void NextRequest();
  void StartLinger();
  void Kill();  // the client is gone (or must be): cancel the handler, close
  void Close();

  Server::Impl* srv_;
  uint64_t id_;
  int fd_;
  SSL* ssl_;
  std::string peer_;
  int peer_port_;
  St st_;
  std::string in_;
  internal::HeadParser parser_;
  std::unique_ptr<internal::ChunkDecoder> chunks_;
  std::unique_ptr<Request> req_;
  const Router::Route* route_ = nullptr;
  internal::BodyKind body_kind_ = internal::BodyKind::kNone;
  uint64_t body_left_ = 0, body_limit_ = 0;
  std::shared_ptr<internal::Channel> ch_;
  std::shared_ptr<std::atomic<bool>> gone_;
  Clock::time_point deadline_, progress_;
  bool idle_ = false;   // between requests, no byte of the next one yet
  bool rdhup_ = false;  // the peer shut down its side
  size_t served_ = 0;
  size_t lingered_ = 0;
};

}  // namespace modelseal::httpd
