// cache_benchmark: disk-cache hit throughput (every hit verified) vs reading the same
// bytes from a plain file, with the page cache dropped (fadvise DONTNEED on the files
// involved, after sync) and warm; remote-cache hit throughput against nginx; and
// single flight under 16 concurrent readers of one span. Alternated runs, medians.
//
//   bazel build -c opt //cache:cache_benchmark
//   cd .bazel/bin/cache && TEST_SRCDIR=$PWD/cache_benchmark.runfiles TEST_WORKSPACE=clip
//   ./cache_benchmark /var/tmp/clip-cache-bench
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "cache/disk_cache.h"
#include "cache/remote_cache.h"
#include "cache/testing/nginx_server.h"
#include "common/testing/subprocess.h"
#include "lazy/tiered_span_source.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kSpan = 2 << 20;
constexpr int kSpans = 128;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void DropCache(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

class SlowOrigin : public clip::SpanSource {
 public:
  explicit SlowOrigin(std::string bytes) : bytes_(std::move(bytes)) {}
  absl::StatusOr<std::shared_ptr<const std::string>> GetSpan(size_t) const override {
    calls.fetch_add(1);
    absl::SleepFor(absl::Milliseconds(50));
    return std::make_shared<const std::string>(bytes_);
  }
  mutable std::atomic<int> calls{0};

 private:
  std::string bytes_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/var/tmp/clip-cache-bench";
  (void)clip::testing::RunCommand("rm -rf " + dir + " && mkdir -p " + dir);
  auto disk = clip::DiskCache::Open({dir + "/cache", uint64_t{8} << 30}).value();
  std::vector<clip::SpanBytes> spans;
  std::vector<clip::Digest> keys;
  std::mt19937_64 rng(1);
  std::string plain_path = dir + "/plain";
  int plain = open(plain_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  for (int i = 0; i < kSpans; ++i) {
    auto s = std::make_shared<std::string>(kSpan, '\0');
    for (size_t j = 0; j < kSpan; j += 8) {
      uint64_t x = rng();
      memcpy(&(*s)[j], &x, 8);
    }
    keys.push_back(clip::Digest::Of(*s));
    (void)disk->Put(keys.back(), s);
    (void)!write(plain, s->data(), s->size());
    spans.push_back(s);
  }
  close(plain);
  const double mb = static_cast<double>(kSpan) * kSpans / 1e6;
  printf("%d spans of 2 MiB (%.0f MB) on %s\n", kSpans, mb, dir.c_str());

  auto read_cache = [&] {
    auto t0 = Clock::now();
    for (const auto& k : keys) {
      auto hit = disk->Get(k);
      if (!hit.ok() || !hit->has_value()) abort();
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  std::string buf(kSpan, '\0');
  auto read_plain = [&] {
    auto t0 = Clock::now();
    int fd = open(plain_path.c_str(), O_RDONLY);
    for (int i = 0; i < kSpans; ++i) {
      if (pread(fd, buf.data(), kSpan, static_cast<off_t>(i) * kSpan) !=
          static_cast<ssize_t>(kSpan))
        abort();
    }
    close(fd);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto drop_all = [&] {
    for (const auto& k : keys) DropCache(disk->PathFor(k));
    DropCache(plain_path);
  };
  for (bool cold : {true, false}) {
    std::vector<double> c, p;
    read_cache();
    read_plain();  // warm-up (and page-in for the warm case)
    for (int r = 0; r < 5; ++r) {
      if (cold) drop_all();
      c.push_back(read_cache());
      if (cold) drop_all();
      p.push_back(read_plain());
    }
    printf("disk hit (%s page cache): cache %.0f MB/s verified, plain file %.0f MB/s, ratio %.2f\n",
           cold ? "dropped" : "warm", mb / Median(c), mb / Median(p), Median(p) / Median(c));
  }

  auto nginx = clip::testing::NginxCas::Start();
  if (!nginx.ok()) {
    fprintf(stderr, "%s\n", nginx.status().ToString().c_str());
    return 1;
  }
  clip::RemoteCache::Options ro;
  ro.endpoint = (*nginx)->endpoint();
  clip::RemoteCache remote(ro);
  for (size_t i = 0; i < keys.size(); ++i) (void)remote.Put(keys[i], spans[i]);  // synchronous
  std::vector<double> rt;
  for (int r = 0; r < 3; ++r) {
    auto t0 = Clock::now();
    for (const auto& k : keys) {
      auto hit = remote.Get(k);
      if (!hit.ok() || !hit->has_value()) abort();
    }
    rt.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  printf("remote hit (nginx, verified, 1 stream): %.0f MB/s (median of 3)\n", mb / Median(rt));

  auto index = std::make_shared<clip::index::v1::LayerIndex>();
  auto* cp = index->add_checkpoints();
  cp->set_span_sha256(reinterpret_cast<const char*>(keys[0].bytes().data()), 32);
  index->set_uncompressed_size(kSpan);
  std::vector<int> fetches;
  for (int r = 0; r < 5; ++r) {
    auto origin = std::make_shared<SlowOrigin>(*spans[0]);
    clip::TieredSpanSource tiered(index, origin, {});
    std::vector<std::thread> readers;
    for (int i = 0; i < 16; ++i) readers.emplace_back([&] { (void)tiered.GetSpan(0); });
    for (auto& t : readers) t.join();
    fetches.push_back(origin->calls.load());
  }
  printf("single flight: 16 concurrent readers of one span, origin fetches per run:");
  for (int f : fetches) printf(" %d", f);
  printf("\n");
  (void)clip::testing::RunCommand("rm -rf " + dir);
  return 0;
}
