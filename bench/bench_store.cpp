// Storage benchmark (not a test): parallel ranged download versus one stream,
// through the S3 store, from a loopback HTTP server imitating S3 GetObject.
// Two links: the raw loopback (CPU-bound on this machine) and a loopback paced
// to a fixed rate per connection, the way one TCP stream to S3 is limited.
// Prints throughput of each and the ratio parallel/single.
//   bench_store [--mib N] [--paced-mib N] [--rate-mbps N] [--threads N] [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "aws/credentials.h"
#include "store/store.h"
#include "tests/support/testenv.h"

using namespace modelseal;

namespace {

struct Args {
  uint64_t mib = 256, paced_mib = 64;
  long rate_mbps = 40;  // megabytes per second per connection
  unsigned threads = 8;
  int reps = 3;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const long v = std::atol(argv[i + 1]);
    if (k == "--mib")
      a.mib = static_cast<uint64_t>(v);
    else if (k == "--paced-mib")
      a.paced_mib = static_cast<uint64_t>(v);
    else if (k == "--rate-mbps")
      a.rate_mbps = v;
    else if (k == "--threads")
      a.threads = static_cast<unsigned>(v);
    else if (k == "--reps")
      a.reps = static_cast<int>(v);
  }
  return a;
}

// Median MB/s of `reps` downloads of `data` from `server` with the given shape.
double Measure(const testenv::HttpServer& server, const std::string& data, unsigned threads,
               uint64_t part, int reps) {
  store::StoreOptions o;
  o.endpoint = server.url();
  o.region = "us-east-1";
  o.credentials = aws::StaticCredentials(aws::Credentials::Make("BENCH", "BENCH"));
  o.threads = threads;
  o.part_size = part;
  auto st = store::OpenStore("s3://bench-bucket", o);
  if (!st.ok()) {
    std::fprintf(stderr, "open: %s\n", st.error().ToString().c_str());
    std::exit(1);
  }
  std::vector<uint8_t> out(data.size());
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    std::memset(out.data(), 0, out.size());
    SpanSink sink(out);
    const auto t0 = std::chrono::steady_clock::now();
    auto info = (*st)->Download("model.bin", sink);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!info.ok() || std::memcmp(out.data(), data.data(), data.size()) != 0) {
      std::fprintf(stderr, "download failed or differs: %s\n",
                   info.ok() ? "bytes differ" : info.error().ToString().c_str());
      std::exit(1);
    }
    rates.push_back(static_cast<double>(data.size()) / 1e6 / s);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

std::unique_ptr<testenv::HttpServer> Serve(const std::string& data, long rate) {
  return std::make_unique<testenv::HttpServer>([&data, rate](const testenv::HttpRequestIn& r) {
    testenv::HttpResponseOut out = testenv::RangedObject(r, data, "bench");
    out.rate_bytes_per_s = rate;
    return out;
  });
}

void Row(const char* link, uint64_t mib, double single, double parallel, unsigned threads) {
  std::printf("| %-34s | %5llu MiB | %8.1f MB/s | %8.1f MB/s (%u streams) | %5.2fx |\n", link,
              static_cast<unsigned long long>(mib), single, parallel, threads, parallel / single);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  std::string data(a.mib << 20, '\0');
  uint32_t x = 7;
  for (auto& c : data) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  std::printf("| link | object | single stream | parallel ranges | ratio |\n");
  std::printf("|---|---|---|---|---|\n");
  {
    auto server = Serve(data, 0);
    const double single = Measure(*server, data, 1, data.size(), a.reps);
    const double par = Measure(*server, data, a.threads, 8ull << 20, a.reps);
    Row("loopback, unpaced", a.mib, single, par, a.threads);
  }
  {
    std::string paced = data.substr(0, a.paced_mib << 20);
    auto server = Serve(paced, a.rate_mbps * 1000000);
    const double single = Measure(*server, paced, 1, paced.size(), a.reps);
    const double par = Measure(*server, paced, a.threads, 8ull << 20, a.reps);
    char label[64];
    std::snprintf(label, sizeof(label), "loopback, %ld MB/s per connection", a.rate_mbps);
    Row(label, a.paced_mib, single, par, a.threads);
  }
  return 0;
}
