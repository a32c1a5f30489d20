// One connection's state machine (I/O thread) and the handler's Responder (worker).
#include <fcntl.h>
#include <openssl/err.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "httpd/server_impl.h"

namespace modelseal::httpd {

using internal::BodyKind;
using internal::Channel;
using internal::Io;

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxLinger = 1 << 20;
constexpr auto kLingerTime = std::chrono::seconds(2);

bool HeadOnly(const Request& req, int status) {
  return req.method == "HEAD" || status == 204 || status == 304 || (status >= 100 && status < 200);
}

// The handler's side of one exchange; lives on the worker running the handler.
class ResponderImpl final : public Responder {
 public:
  ResponderImpl(Server::Impl* srv, uint64_t conn, std::shared_ptr<Channel> ch, const Request& req,
                bool keep_alive)
      : srv_(srv), conn_(conn), ch_(std::move(ch)), req_(req), keep_alive_(keep_alive) {}

  bool Send(Response r) override {
    if (state_ != State::kNone) return false;
    state_ = State::kDone;
    const bool head_only = HeadOnly(req_, r.status);
    const bool no_length = r.status == 204 || r.status == 304 || r.status < 200;
    std::string data = internal::ResponseHead(r.status, r.content_type, r.headers,
                                              no_length ? -1 : static_cast<int64_t>(r.body.size()),
                                              false, keep_alive_, req_.version_minor);
    if (!head_only) data += r.body;
    return Push(std::move(data), true);
  }

  bool BeginStream(int status, std::string content_type, HeaderList headers) override {
    if (state_ != State::kNone) return false;
    state_ = State::kStreaming;
    head_only_ = HeadOnly(req_, status);
    const bool bodiless = status == 204 || status == 304 || status < 200;
    // HEAD gets the head GET would get (chunked on 1.1), without a body.
    chunked_ = req_.version_minor == 1 && !bodiless;
    if (req_.version_minor == 0 && !head_only_) keep_alive_ = false;  // close-delimited
    return Push(internal::ResponseHead(status, content_type, headers, -1, chunked_, keep_alive_,
                                       req_.version_minor),
                false);
  }

  bool Write(std::string_view data) override {
    if (state_ != State::kStreaming) return false;
    if (req_.client_gone().load()) return false;
    if (data.empty() || head_only_) return true;
    std::string piece;
    if (chunked_) {
      char size[32];
      std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
      piece.reserve(data.size() + 32);
      piece += size;
      piece += data;
      piece += "\r\n";
    } else {
      piece = std::string(data);
    }
    return Push(std::move(piece), false);
  }

  bool End() override {
    if (state_ != State::kStreaming) return false;
    state_ = State::kDone;
    return Push(chunked_ && !head_only_ ? "0\r\n\r\n" : "", true);
  }

  bool SendError(const HttpError& e) override { return Send(srv_->Render(e, req_)); }

  // After the handler returned.
  void Finish() {
    if (state_ == State::kNone) {
      SendError({500, "the request handler did not answer", "", {}});
    } else if (state_ == State::kStreaming) {
      End();
    }
  }

 private:
  bool Push(std::string data, bool final) {
    {
      std::unique_lock<std::mutex> lock(ch_->mu);
      ch_->cv.wait(lock, [&] { return ch_->dead || ch_->pending() <= srv_->opt.stream_buffer; });
      if (final) {
        ch_->done = true;
        ch_->close_after = !keep_alive_;
      }
      if (ch_->dead) return false;
      ch_->out += data;
    }
    srv_->Notify(conn_);
    return true;
  }

  enum class State { kNone, kStreaming, kDone };
  Server::Impl* srv_;
  uint64_t conn_;
  std::shared_ptr<Channel> ch_;
  const Request& req_;
  bool keep_alive_;
  State state_ = State::kNone;
  bool chunked_ = false, head_only_ = false;
};

}  // namespace

Connection::Connection(Server::Impl* srv, uint64_t id, int fd, SSL* ssl, std::string peer,
                       int peer_port)
    : srv_(srv),
      id_(id),
      fd_(fd),
      ssl_(ssl),
      peer_(std::move(peer)),
      peer_port_(peer_port),
      st_(ssl != nullptr ? St::kHandshake : St::kHead),
      parser_(srv->opt.max_head_bytes, srv->opt.max_headers) {
  deadline_ = Clock::now() + srv->opt.head_timeout;
}

Connection::~Connection() {
  if (st_ != St::kClosed) Close();
}

// ---- socket I/O ----------------------------------------------------------------

Io Connection::Read(char* buf, size_t cap, size_t* n) {
  if (ssl_ != nullptr && st_ != St::kLinger) {
    ERR_clear_error();
    const int r = SSL_read(ssl_, buf, static_cast<int>(cap));
    if (r > 0) {
      *n = static_cast<size_t>(r);
      return Io::kOk;
    }
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return Io::kAgain;
      case SSL_ERROR_ZERO_RETURN:
        return Io::kEof;
      default:
        return Io::kError;
    }
  }
  const ssize_t r = ::recv(fd_, buf, cap, 0);
  if (r > 0) {
    *n = static_cast<size_t>(r);
    return Io::kOk;
  }
  if (r == 0) return Io::kEof;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Io::kAgain;
  return Io::kError;
}

Io Connection::Write(const char* p, size_t len, size_t* n) {
  if (ssl_ != nullptr) {
    ERR_clear_error();
    const int r = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(len, 16384)));
    if (r > 0) {
      *n = static_cast<size_t>(r);
      return Io::kOk;
    }
    const int e = SSL_get_error(ssl_, r);
    return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? Io::kAgain : Io::kError;
  }
  const ssize_t r = ::send(fd_, p, len, MSG_NOSIGNAL);
  if (r >= 0) {
    *n = static_cast<size_t>(r);
    return Io::kOk;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Io::kAgain;
  return Io::kError;
}

Io Connection::Flush() {
  if (!ch_) return Io::kOk;
  std::lock_guard<std::mutex> lock(ch_->mu);
  const size_t before = ch_->pending();
  Io result = Io::kOk;
  while (ch_->pending() > 0) {
    size_t n = 0;
    const Io r = Write(ch_->out.data() + ch_->off, ch_->pending(), &n);
    if (r != Io::kOk) {
      result = r;
      break;
    }
    ch_->off += n;
    progress_ = Clock::now();
  }
  if (ch_->off == ch_->out.size()) {
    ch_->out.clear();
    ch_->off = 0;
  } else if (ch_->off > (1u << 20)) {
    ch_->out.erase(0, ch_->off);
    ch_->off = 0;
  }
  if (before != ch_->pending()) ch_->cv.notify_all();
  return result;
}

// ---- the state machine -----------------------------------------------------------

void Connection::OnEvent(uint32_t events) {
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    rdhup_ = true;
    if (st_ == St::kHandler) return Kill();  // the client hung up while its request runs
  }
  Advance();
}

void Connection::Advance() {
  for (int step = 0; step < 64; ++step) {
    switch (st_) {
      case St::kClosed:
        return;
      case St::kHandshake: {
        ERR_clear_error();
        const int r = SSL_do_handshake(ssl_);
        if (r == 1) {
          st_ = St::kHead;
          continue;
        }
        const int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
        return Close();
      }
      case St::kHead:
      case St::kBody: {
        if (ch_ && ch_->pending() > 0 && Flush() == Io::kError) return Close();  // 100 Continue
        if (ProcessInput()) continue;
        if (in_.size() >= 4 * kReadChunk) return;  // not reached: ProcessInput consumes
        const size_t old = in_.size();
        in_.resize(old + kReadChunk);
        size_t n = 0;
        const Io r = Read(in_.data() + old, kReadChunk, &n);
        in_.resize(old + (r == Io::kOk ? n : 0));
        if (r == Io::kOk) continue;
        if (r == Io::kAgain) return;
        return Close();  // EOF or error: a partial request is dropped
      }
      case St::kHandler:
      case St::kClosing: {
        if (Flush() == Io::kError) return Kill();
        bool finished = false, close_after = true;
        {
          std::lock_guard<std::mutex> lock(ch_->mu);
          finished = ch_->done && ch_->pending() == 0;
          close_after = ch_->close_after;
        }
        if (!finished) return;
        if (st_ == St::kClosing || close_after || srv_->stopping.load()) {
          StartLinger();
        } else {
          NextRequest();
        }
        continue;
      }
      case St::kLinger: {
        char buf[16384];
        size_t n = 0;
        const Io r = Read(buf, sizeof(buf), &n);
        if (r == Io::kAgain) return;
        if (r == Io::kOk && (lingered_ += n) <= kMaxLinger) continue;
        return Close();
      }
    }
  }
  srv_->Notify(id_);  // more to do: come back after the others had their turn
}

bool Connection::ProcessInput() {
  if (in_.empty()) return false;
  if (st_ == St::kHead) {
    if (idle_) {  // the first byte of the next request on a kept-alive connection
      idle_ = false;
      deadline_ = Clock::now() + srv_->opt.head_timeout;
    }
    switch (parser_.Feed(in_)) {
      case internal::HeadParser::State::kIncomplete:
        return false;
      case internal::HeadParser::State::kError:
        EarlyError({parser_.error().status, parser_.error().message, "", {}});
        return true;
      case internal::HeadParser::State::kDone:
        in_.erase(0, parser_.consumed());
        OnHead();
        return true;
    }
  }
  if (st_ != St::kBody) return false;
  if (body_kind_ == BodyKind::kLength) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(in_.size(), body_left_));
    if (!StoreBody(std::string_view(in_).substr(0, n))) return true;
    in_.erase(0, n);
    body_left_ -= n;
    if (body_left_ == 0) Dispatch();
    return true;
  }
  size_t used = 0;
  bool store_failed = false;
  const auto state = chunks_->Feed(in_, &used, [&](std::string_view d) {
    store_failed = !StoreBody(d);
    return !store_failed;
  });
  if (store_failed) return true;
  in_.erase(0, used);
  switch (state) {
    case internal::ChunkDecoder::State::kError:
      EarlyError({chunks_->error().status, chunks_->error().message, "", {}});
      return true;
    case internal::ChunkDecoder::State::kDone:
      Dispatch();
      return true;
    case internal::ChunkDecoder::State::kMore:
      return used > 0 && !in_.empty();
  }
  return false;
}

void Connection::OnHead() {
  internal::Head& h = parser_.head();
  req_ = std::make_unique<Request>();
  Request& r = *req_;
  r.method = std::move(h.method);
  r.target = std::move(h.target);
  r.path = std::move(h.path);
  r.raw_query = std::move(h.raw_query);
  r.query = internal::ParseQuery(r.raw_query);
  r.version_minor = h.version_minor;
  r.headers = std::move(h.headers);
  r.peer = peer_;
  r.peer_port = peer_port_;
  r.tls = ssl_ != nullptr;
  gone_ = r.gone_;
  ++srv_->requests;

  const Router::Match m = srv_->router.Find(r.method, r.path);
  if (m.route == nullptr) {
    if (m.allowed.empty()) return EarlyError({404, "no such endpoint: " + r.method + " " + r.path});
    std::string allow;
    for (const auto& a : m.allowed) allow += (allow.empty() ? "" : ", ") + a;
    return EarlyError(
        {405,
         "method " + r.method + " is not allowed for " + r.path + " (allowed: " + allow + ")",
         "",
         {{"Allow", allow}}});
  }
  route_ = m.route;
  r.route = m.route->pattern;
  r.params = m.params;
  body_kind_ = h.body;
  body_limit_ = route_->options.max_body_bytes != 0 ? route_->options.max_body_bytes
                                                    : srv_->opt.max_body_bytes;
  const std::string too_large =
      "request body is larger than the limit of " + std::to_string(body_limit_) + " bytes";
  if (body_kind_ == BodyKind::kLength && h.content_length > body_limit_) {
    return EarlyError({413, too_large});
  }
  if (srv_->hook) {
    if (auto refusal = srv_->hook(r)) return EarlyError(std::move(*refusal));
  }
  if (!route_->options.spool_dir.empty() && body_kind_ != BodyKind::kNone) {
    const std::string& dir = route_->options.spool_dir;
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      std::string tmpl = dir + "/.httpd-body-XXXXXX";
      fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
      if (fd >= 0) ::unlink(tmpl.c_str());
    }
    if (fd < 0) {
      return EarlyError({500, "cannot store the request body in " + dir + ": " + strerror(errno)});
    }
    r.body_fd = fd;
  }
  if (body_kind_ == BodyKind::kNone) return Dispatch();
  if (body_kind_ == BodyKind::kLength) {
    body_left_ = h.content_length;
    if (r.body_fd < 0) r.body.reserve(static_cast<size_t>(std::min<uint64_t>(body_left_, 1 << 20)));
  } else {
    chunks_ = std::make_unique<internal::ChunkDecoder>(body_limit_, srv_->opt.max_head_bytes);
  }
  if (h.expect_continue) {
    ch_ = std::make_shared<Channel>();
    ch_->out = "HTTP/1.1 100 Continue\r\n\r\n";
  }
  st_ = St::kBody;
  const auto t = route_->options.body_timeout.count() > 0 ? route_->options.body_timeout
                                                          : srv_->opt.body_timeout;
  deadline_ = Clock::now() + t;
}

bool Connection::StoreBody(std::string_view data) {
  Request& r = *req_;
  r.body_size += data.size();
  if (r.body_fd < 0) {
    r.body.append(data);
    return true;
  }
  while (!data.empty()) {
    const ssize_t n = ::write(r.body_fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      EarlyError({500, std::string("cannot store the request body: ") + strerror(errno)});
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void Connection::Dispatch() {
  Request& r = *req_;
  if (r.body_fd >= 0) ::lseek(r.body_fd, 0, SEEK_SET);
  ++served_;
  const bool keep_alive = parser_.head().keep_alive &&
                          served_ < srv_->opt.max_requests_per_connection && !srv_->stopping.load();
  ch_ = std::make_shared<Channel>();
  if (rdhup_) gone_->store(true);
  st_ = St::kHandler;
  progress_ = Clock::now();
  std::shared_ptr<Request> req(std::move(req_));
  const Router::Route* route = route_;
  Server::Impl* srv = srv_;
  const uint64_t id = id_;
  std::shared_ptr<Channel> ch = ch_;
  const bool queued = srv_->pool.Submit([srv, id, ch, req, route, keep_alive] {
    ResponderImpl res(srv, id, ch, *req, keep_alive);
    // A handler that throws answers 500 (or ends its stream) instead of taking the
    // process down with std::terminate. Its message is not logged: it may quote the
    // request (a prompt).
    try {
      route->handler(*req, res);
    } catch (...) {
      log::Line(
          "modelseal: %s %.200s: the handler failed with an exception (a 500, or its stream ended)",
          req->method.c_str(), req->path.c_str());
    }
    res.Finish();
    if (req->body_fd >= 0) ::close(req->body_fd);
    req->body_fd = -1;
  });
  if (!queued) {
    req_ = std::make_unique<Request>();
    req_->method = req->method;
    req_->path = req->path;
    req_->route = req->route;
    req_->headers = req->headers;
    if (req->body_fd >= 0) ::close(req->body_fd);
    ch_.reset();
    EarlyError({503, "the server is busy; try again later"});
  }
}

void Connection::EarlyError(HttpError e) {
  Request scratch;
  const Request* r = req_.get();
  if (r == nullptr) {
    const internal::Head& h = parser_.head();
    scratch.method = h.method;
    scratch.target = h.target;
    scratch.path = h.path;
    scratch.version_minor = h.version_minor;
    scratch.headers = h.headers;
    scratch.peer = peer_;
    scratch.tls = ssl_ != nullptr;
    r = &scratch;
  }
  const Response res = srv_->Render(e, *r);
  std::string data =
      internal::ResponseHead(res.status, res.content_type, res.headers,
                             static_cast<int64_t>(res.body.size()), false, false, r->version_minor);
  if (r->method != "HEAD") data += res.body;
  if (req_ && req_->body_fd >= 0) {
    ::close(req_->body_fd);
    req_->body_fd = -1;
  }
  if (!ch_) ch_ = std::make_shared<Channel>();
  {
    std::lock_guard<std::mutex> lock(ch_->mu);
    ch_->out += data;
    ch_->done = true;
    ch_->close_after = true;
  }
  st_ = St::kClosing;
  progress_ = Clock::now();
  deadline_ = progress_ + srv_->opt.send_timeout;
}

void Connection::NextRequest() {
  req_.reset();
  ch_.reset();
  gone_.reset();
  chunks_.reset();
  route_ = nullptr;
  body_kind_ = BodyKind::kNone;
  body_left_ = 0;
  parser_.Reset();
  st_ = St::kHead;
  idle_ = true;
  deadline_ = Clock::now() + srv_->opt.idle_timeout;
}

void Connection::StartLinger() {
  if (ssl_ != nullptr) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // close_notify, best effort
  }
  ::shutdown(fd_, SHUT_WR);
  st_ = St::kLinger;
  lingered_ = 0;
  deadline_ = Clock::now() + kLingerTime;
}

void Connection::Kill() {
  if (gone_) gone_->store(true);
  Close();
}

void Connection::Close() {
  if (st_ == St::kClosed) return;
  if (ch_) {
    std::lock_guard<std::mutex> lock(ch_->mu);
    ch_->dead = true;
    ch_->cv.notify_all();
  }
  if (st_ == St::kHandler && gone_) gone_->store(true);
  if (req_ && req_->body_fd >= 0) {
    ::close(req_->body_fd);
    req_->body_fd = -1;
  }
  st_ = St::kClosed;
  ::epoll_ctl(srv_->epfd, EPOLL_CTL_DEL, fd_, nullptr);
  if (ssl_ != nullptr) SSL_free(ssl_);
  ssl_ = nullptr;
  ::close(fd_);
  fd_ = -1;
  auto it = srv_->per_client.find(peer_);
  if (it != srv_->per_client.end() && --it->second == 0) srv_->per_client.erase(it);
  --srv_->open;
}

void Connection::Sweep(Clock::time_point now, bool stop) {
  switch (st_) {
    case St::kClosed:
      return;
    case St::kHandshake:
      if (now > deadline_) Close();
      return;
    case St::kHead:
      if (now <= deadline_) return;
      if (idle_ || !parser_.started()) return Close();  // idle: closed without a word
      EarlyError({408, "the request head did not arrive in time"});
      return Advance();
    case St::kBody:
      if (now <= deadline_) return;
      EarlyError({408, "the request body did not arrive in time"});
      return Advance();
    case St::kHandler: {
      bool stalled = false;
      {
        std::lock_guard<std::mutex> lock(ch_->mu);
        stalled = ch_->pending() > 0 && now - progress_ > srv_->opt.send_timeout;
      }
      if (stalled || stop) Kill();
      return;
    }
    case St::kClosing:
      if (now > deadline_ || stop) Close();
      return;
    case St::kLinger:
      if (now > deadline_) Close();
      return;
  }
}

void Connection::OnStop() {
  if (st_ != St::kHandler && st_ != St::kClosing) Close();
}

}  // namespace modelseal::httpd
