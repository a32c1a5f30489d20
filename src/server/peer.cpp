// PeerWatch and the socket lookup behind it (see peer.h).
#include "server/peer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace modelseal::server {

namespace {

// "127.0.0.1" / "::1" and the port of a socket address; false for other families.
bool AddrText(const sockaddr_storage& sa, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    if (!inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf))) return false;
    *port = ntohs(in->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    if (!inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf))) return false;
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  *ip = buf;
  return true;
}

bool Matches(int fd, const httplib::Request& req) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  std::string ip;
  int port = -1;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0 || !AddrText(sa, &ip, &port) ||
      port != req.local_port || ip != req.local_addr) {
    return false;
  }
  len = sizeof(sa);
  return getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0 && AddrText(sa, &ip, &port) &&
         port == req.remote_port && ip == req.remote_addr;
}

}  // namespace

int RequestSocket(const httplib::Request& req) {
  if (req.remote_port < 0 || req.local_port < 0) return -1;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st {};
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (Matches(static_cast<int>(fd), req)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

PeerWatch::PeerWatch() : wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this] { Loop(); });
}

PeerWatch::~PeerWatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  Wake();
  thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

PeerWatch::Guard PeerWatch::Watch(int fd, std::atomic<bool>* gone) {
  if (fd < 0) return Guard(nullptr, -1, 0);
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    watched_[fd] = {gone, id};
  }
  Wake();
  return Guard(this, fd, id);
}

PeerWatch::Guard::~Guard() {
  if (!w_) return;
  {
    std::lock_guard<std::mutex> lock(w_->mu_);
    auto it = w_->watched_.find(fd_);
    if (it != w_->watched_.end() && it->second.id == id_) w_->watched_.erase(it);
  }
  w_->Wake();
}

void PeerWatch::Wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
}

void PeerWatch::Loop() {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  while (true) {
    fds.clear();
    ids.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      for (const auto& [fd, e] : watched_) {
        // A flag already set needs no more polling (and would make poll return at once).
        if (e.gone->load()) continue;
        fds.push_back({fd, POLLRDHUP, 0});
        ids.push_back(e.id);
      }
    }
    fds.push_back({wake_fd_, POLLIN, 0});
    // The timeout only bounds how long a missed wake-up could last.
    const int n = poll(fds.data(), fds.size(), wake_fd_ >= 0 ? 1000 : 100);
    if (n < 0 && errno != EINTR) return;
    if (fds.back().revents & POLLIN) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof(v));
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) continue;
      // Only while the same request still owns the descriptor.
      auto it = watched_.find(fds[i].fd);
      if (it != watched_.end() && it->second.id == ids[i]) it->second.gone->store(true);
    }
  }
}

}  // namespace modelseal::server
