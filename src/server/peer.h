// Noticing that an HTTP client went away while its request is still being served.
//
// A streamed response finds out when a write fails, but a request that answers only
// at the end writes nothing until then, and a long prompt writes nothing for a while
// either. PeerWatch polls the sockets of running generations for a hang-up
// (POLLRDHUP/POLLHUP/POLLERR, the way Ollama's Go server cancels a request's context
// when its connection reads EOF) and sets each request's cancel flag, which stops
// llama.cpp at its next graph node.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace modelseal::server {

// The connected socket `req` arrived on (matched by its local and remote address and
// port among this process's sockets), or -1 when it cannot be found.
int RequestSocket(const httplib::Request& req);

class PeerWatch {
 public:
  PeerWatch();
  ~PeerWatch();
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  // Sets *gone when the peer of `fd` hangs up, until the returned guard is destroyed.
  // `fd` < 0 watches nothing.
  class Guard {
   public:
    Guard(PeerWatch* w, int fd, uint64_t id) : w_(w), fd_(fd), id_(id) {}
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    PeerWatch* w_;
    int fd_;
    uint64_t id_;
  };
  [[nodiscard]] Guard Watch(int fd, std::atomic<bool>* gone);

 private:
  void Loop();
  void Wake();

  std::mutex mu_;
  struct Entry {
    std::atomic<bool>* gone;
    uint64_t id;  // tells a reused descriptor from the one polled
  };
  std::map<int, Entry> watched_;
  uint64_t next_id_ = 1;
  bool stop_ = false;
  int wake_fd_ = -1;  // eventfd: the set changed or stop
  std::thread thread_;
};

}  // namespace modelseal::server
