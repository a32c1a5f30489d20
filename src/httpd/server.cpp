// The listener, the I/O loop, the worker pool and Stop (see httpd.h).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "httpd/server_impl.h"

namespace modelseal::httpd {

namespace {

constexpr char kModule[] = "httpd";
constexpr uint64_t kListenerId = 0;
constexpr uint64_t kWakeId = 1;
constexpr auto kTick = std::chrono::milliseconds(100);

Error Unavailable(const std::string& reason, const std::string& message) {
  return MakeError(ErrorCode::kUnavailable, kModule, reason, message);
}

std::string HostPort(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

struct AddrInfoFree {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};

bool LoopbackAddress(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return false;
}

std::string PeerText(const sockaddr_storage& ss, int* port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    *port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    *port = ntohs(in6->sin6_port);
  }
  return buf;
}

}  // namespace

// ---- worker pool -----------------------------------------------------------------

namespace internal {

void WorkerPool::Start(int threads, size_t max_queued) {
  max_queued_ = max_queued;
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      while (true) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
          if (queue_.empty()) return;
          task = std::move(queue_.front());
          queue_.pop_front();
        }
        task();
      }
    });
  }
}

bool WorkerPool::Submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void WorkerPool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace internal

// ---- Impl ------------------------------------------------------------------------

void Server::Impl::Notify(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(notify_mu);
    notified.push_back(id);
  }
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd, &one, sizeof(one));
}

Response Server::Impl::Render(const HttpError& e, const Request& req) const {
  Response r;
  if (renderer) {
    r = renderer(e, req);
  } else {
    r.content_type = "text/plain; charset=utf-8";
    r.body = e.message + "\n";
  }
  r.status = e.status;
  for (const auto& h : e.headers) r.headers.push_back(h);
  return r;
}

Status Server::Impl::Bind() {
  const std::string where = HostPort(opt.host, opt.port);
  if (!opt.tls && !opt.allow_insecure_http && !IsLoopback(opt.host)) {
    return MakeError(ErrorCode::kPermissionDenied, kModule, "insecure-listen",
                     "refusing plain HTTP on " + where +
                         ", which is not a loopback address: anyone on the network could read "
                         "and change requests and answers. Give --tls-cert and --tls-key, or "
                         "--insecure-http to serve plain HTTP anyway");
  }
  if (opt.tls) {
    MS_ASSIGN_OR_RETURN(tls, internal::TlsContext::Load(*opt.tls));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(opt.port);
  if (const int rc = getaddrinfo(opt.host.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "bad-address",
                     "cannot listen on " + where + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, AddrInfoFree> list(found);
  const addrinfo* a = found;
  listen_fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
  if (listen_fd < 0) return Unavailable("bind-failed", "socket: " + std::string(strerror(errno)));
  // SO_REUSEADDR only lets a restart bind over TIME_WAIT leftovers; it never lets two
  // listeners share a port on Linux (that is SO_REUSEPORT, which is not set).
  const int on = 1;
  ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (::bind(listen_fd, a->ai_addr, a->ai_addrlen) != 0) {
    const int err = errno;
    ::close(listen_fd);
    listen_fd = -1;
    if (err == EADDRINUSE) {
      return Unavailable("address-in-use",
                         where + " is already in use (another " + opt.name + "?)");
    }
    return Unavailable("bind-failed", "cannot listen on " + where + ": " + strerror(err));
  }
  if (::listen(listen_fd, opt.backlog) != 0) {
    const int err = errno;
    ::close(listen_fd);
    listen_fd = -1;
    if (err == EADDRINUSE) {
      return Unavailable("address-in-use",
                         where + " is already in use (another " + opt.name + "?)");
    }
    return Unavailable("listen-failed", "listen on " + where + ": " + strerror(err));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len);
  PeerText(ss, &port);
  return Ok{};
}

void Server::Impl::Refuse(int fd) {
  ++refused;
  if (!tls) {
    Request none;
    const Response r = Render({503, "too many connections; try again later", "", {}}, none);
    const std::string data =
        internal::ResponseHead(r.status, r.content_type, r.headers,
                               static_cast<int64_t>(r.body.size()), false, false, 1) +
        r.body;
    [[maybe_unused]] const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
  }
  ::close(fd);
}

void Server::Impl::Accept() {
  while (true) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    const int fd =
        ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop accepting for a moment instead of spinning.
        ::epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
        accept_paused = true;
        accept_resume = Clock::now() + kTick;
      }
      return;
    }
    ++accepted;
    int peer_port = 0;
    std::string peer = PeerText(ss, &peer_port);
    if (stopping.load() || conns.size() >= opt.max_connections ||
        per_client[peer] >= opt.max_connections_per_client) {
      if (per_client[peer] == 0) per_client.erase(peer);
      Refuse(fd);
      continue;
    }
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    SSL* ssl = nullptr;
    if (tls) {
      ssl = tls->NewSession(fd);
      if (ssl == nullptr) {
        ::close(fd);
        continue;
      }
    }
    const uint64_t id = next_id++;
    ++per_client[peer];
    ++open;
    auto conn = std::make_unique<Connection>(this, id, fd, ssl, std::move(peer), peer_port);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = id;
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) continue;  // conn's destructor closes
    conns.emplace(id, std::move(conn));
  }
}

void Server::Impl::Sweep(Clock::time_point now) {
  const bool drain_over = stop_seen && now > drain_deadline;
  for (auto& [id, c] : conns) c->Sweep(now, drain_over);
}

void Server::Impl::Loop() {
  epoll_event events[256];
  next_sweep = Clock::now() + kTick;
  while (true) {
    const int n = ::epoll_wait(epfd, events, 256, static_cast<int>(kTick.count()));
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kListenerId) {
        Accept();
      } else if (id == kWakeId) {
        uint64_t v = 0;
        [[maybe_unused]] const ssize_t r = ::read(wake_fd, &v, sizeof(v));
      } else if (auto it = conns.find(id); it != conns.end()) {
        it->second->OnEvent(events[i].events);
      }
    }
    std::vector<uint64_t> ids;
    {
      std::lock_guard<std::mutex> lock(notify_mu);
      ids.swap(notified);
    }
    for (const uint64_t id : ids) {
      if (auto it = conns.find(id); it != conns.end()) it->second->Advance();
    }
    const auto now = Clock::now();
    if (stopping.load() && !stop_seen) {
      stop_seen = true;
      drain_deadline = now + opt.drain_timeout;
      if (!accept_paused) ::epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
      ::close(listen_fd);
      listen_fd = -1;
      for (auto& [id, c] : conns) c->OnStop();
    }
    if (now >= next_sweep) {
      Sweep(now);
      next_sweep = now + kTick;
    }
    if (accept_paused && !stop_seen && now >= accept_resume) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = kListenerId;
      if (::epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) == 0) accept_paused = false;
    }
    for (auto it = conns.begin(); it != conns.end();) {
      if (it->second->state() == Connection::St::kClosed) {
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
    if (stop_seen && conns.empty()) return;
  }
}

// ---- Server ----------------------------------------------------------------------

Server::Server(ServerOptions options, Router router, ErrorRenderer renderer, HeadHook hook)
    : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  impl_->router = std::move(router);
  impl_->renderer = std::move(renderer);
  impl_->hook = std::move(hook);
}

Server::~Server() {
  Stop();
}

Status Server::Start() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.stop_mu);
  if (s.started) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "already-started", "started twice");
  }
  // TLS writes go through OpenSSL's socket BIO (write(2)): a peer that vanished must not
  // kill the process with SIGPIPE.
  struct sigaction old {};
  if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
    std::signal(SIGPIPE, SIG_IGN);
  }
  MS_RETURN_IF_ERROR(s.Bind());
  s.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.epfd < 0 || s.wake_fd < 0) {
    return Unavailable("listen-failed", "epoll/eventfd: " + std::string(strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerId;
  ::epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.listen_fd, &ev);
  ev.data.u64 = kWakeId;
  ::epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.wake_fd, &ev);
  s.pool.Start(std::max(1, s.opt.workers), s.opt.max_queued);
  s.io = std::thread([&s] { s.Loop(); });
  s.started = true;
  return Ok{};
}

void Server::Stop() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.stop_mu);
  if (!s.started || s.stopped) {
    if (!s.started && s.listen_fd >= 0) {
      ::close(s.listen_fd);
      s.listen_fd = -1;
    }
    return;
  }
  s.stopped = true;
  s.stopping = true;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(s.wake_fd, &one, sizeof(one));
  s.io.join();
  s.pool.Shutdown();
  ::close(s.epfd);
  ::close(s.wake_fd);
  s.epfd = s.wake_fd = -1;
}

int Server::port() const {
  return impl_->port;
}

Server::Stats Server::stats() const {
  return {impl_->open.load(), impl_->accepted.load(), impl_->refused.load(),
          impl_->requests.load()};
}

bool IsLoopback(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  std::unique_ptr<addrinfo, AddrInfoFree> list(found);
  bool any = false;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (!LoopbackAddress(a->ai_addr)) return false;
    any = true;
  }
  return any;
}

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

int StopSignals::Wait() {
  int sig = 0;
  while (sigwait(&set_, &sig) != 0) {
  }
  return sig;
}

}  // namespace modelseal::httpd
