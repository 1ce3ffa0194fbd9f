// fs_benchmark: the layer filesystem through real FUSE mounts, against local disk.
//  1. sequential read of a large file through the mount vs the same file on local disk,
//     page cache dropped (fadvise DONTNEED on exactly the files read): first read
//     (inflating from the local blob) and a disk-cache hit;
//  2. a find+stat walk of a layer with thousands of files vs the same tree extracted on
//     local disk, first and second walk;
//  3. cold first reads of files from the blob served by a local docker-registry;
//  4. daemon memory and threads per mounted layer (N mounts in one FuseServer).
//
//   bazel build -c opt //fs:fs_benchmark
//   cd .bazel/bin/fs && TEST_SRCDIR=$PWD/fs_benchmark.runfiles TEST_WORKSPACE=clip
//   ./fs_benchmark /var/tmp/clip-fs-bench
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/disk_cache.h"
#include "cache/memory_cache.h"
#include "common/file_blob_reader.h"
#include "common/testing/subprocess.h"
#include "fs/fuse_server.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "index/span_inflater.h"
#include "index/span_source.h"
#include "lazy/tiered_span_source.h"
#include "registry/registry_blob_reader.h"
#include "registry/testing/registry_server.h"

namespace {

using Clock = std::chrono::steady_clock;
using clip::testing::RunCommand;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Drop(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

double ReadFile(const std::string& path) {
  auto t = Clock::now();
  int fd = open(path.c_str(), O_RDONLY);
  std::string buf(1 << 20, '\0');
  while (read(fd, buf.data(), buf.size()) > 0) {
  }
  close(fd);
  return Since(t);
}

// find + lstat of every entry; returns (seconds, entries).
std::pair<double, int> Walk(const std::string& root) {
  auto t = Clock::now();
  int n = 0;
  std::function<void(const std::string&)> rec = [&](const std::string& dir) {
    DIR* d = opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string p = dir + "/" + name;
      struct stat st;
      if (lstat(p.c_str(), &st) == 0) {
        ++n;
        if (S_ISDIR(st.st_mode)) rec(p);
      }
    }
    closedir(d);
  };
  rec(root);
  return {Since(t), n};
}

long RssKb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

int Threads() {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

struct Layer {
  std::shared_ptr<const clip::index::v1::LayerIndex> index;
  std::unique_ptr<clip::FileBlobReader> blob;
};

Layer Load(const std::string& path) {
  Layer l;
  l.blob = clip::FileBlobReader::Open(path).value();
  l.index =
      std::make_shared<const clip::index::v1::LayerIndex>(clip::BuildLayerIndex(*l.blob).value());
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/var/tmp/clip-fs-bench";
  (void)RunCommand("rm -rf " + dir + " && mkdir -p " + dir + "/big " + dir + "/m");
  // A 256 MB file of real binaries (compressible like a layer), and a tree of headers.
  (void)RunCommand("cat /usr/lib/x86_64-linux-gnu/*.so* 2>/dev/null | head -c 268435456 > " + dir +
                   "/big/data.bin");
  (void)RunCommand("tar -C " + dir + "/big -czf " + dir + "/big.tar.gz data.bin");
  (void)RunCommand("tar -C / -czf " + dir + "/tree.tar.gz usr/include");
  (void)RunCommand("mkdir -p " + dir + "/tree && tar -C " + dir + "/tree -xzf " + dir +
                   "/tree.tar.gz");

  clip::FuseServer server(4);
  // 1. Sequential read.
  {
    Layer big = Load(dir + "/big.tar.gz");
    clip::MemoryCache mem(64 << 20);
    auto disk = clip::DiskCache::Open({dir + "/cache", uint64_t{4} << 30}).value();
    clip::WriteBack exec({});
    clip::ThreadPool readahead(4, 32);
    const char* ra = getenv("CLIP_READAHEAD");  // spans ahead; 0 = off
    clip::CacheTiers tiers{&mem, disk.get(), nullptr, &exec};
    tiers.readahead = &readahead;
    tiers.readahead_spans = ra ? atoi(ra) : 6;
    auto spans = std::make_shared<clip::TieredSpanSource>(
        big.index, std::make_shared<clip::SpanInflater>(big.index, *big.blob), tiers);
    std::string mnt = dir + "/m/big";
    (void)RunCommand("mkdir -p " + mnt);
    auto id = server.Mount(mnt, std::make_shared<clip::LayerFs>(big.index, spans)).value();
    std::string local = dir + "/big/data.bin", remote = mnt + "/data.bin";
    double mb = 268435456 / 1e6;
    Drop(local);
    double local_cold = ReadFile(local);
    double first = ReadFile(remote);  // inflates every span from the local blob
    exec.Flush();
    std::vector<double> hit, disk_local;
    for (int r = 0; r < 3; ++r) {
      // Page cache of the mounted file and of the cache files dropped: disk-cache hits.
      Drop(remote);
      for (size_t s = 0; s < clip::SpanCount(*big.index); ++s) {
        Drop(disk->PathFor(clip::GetSpanInfo(*big.index, s).digest));
      }
      clip::MemoryCache fresh(64 << 20);  // no memory hits either
      clip::CacheTiers tiers2 = tiers;
      tiers2.memory = &fresh;
      auto spans2 = std::make_shared<clip::TieredSpanSource>(
          big.index, std::make_shared<clip::SpanInflater>(big.index, *big.blob), tiers2);
      std::string mnt2 = dir + "/m/big2";
      (void)RunCommand("mkdir -p " + mnt2);
      auto id2 = server.Mount(mnt2, std::make_shared<clip::LayerFs>(big.index, spans2)).value();
      hit.push_back(ReadFile(mnt2 + "/data.bin"));
      (void)server.Unmount(id2);
      server.WaitUnmounted(id2, absl::Seconds(5));
      Drop(local);
      disk_local.push_back(ReadFile(local));
    }
    printf("1. sequential read of a 268 MB file (page cache dropped):\n");
    printf(
        "   local disk %.0f MB/s; mount, first read (inflate from local blob) %.0f MB/s, "
        "ratio %.2f\n",
        mb / local_cold, mb / first, local_cold / first);
    printf(
        "   mount, disk-cache hit %.0f MB/s vs local disk %.0f MB/s (medians of 3), ratio %.2f\n",
        mb / Median(hit), mb / Median(disk_local), Median(disk_local) / Median(hit));
    (void)server.Unmount(id);
  }
  // 2. find + stat walk.
  {
    Layer tree = Load(dir + "/tree.tar.gz");
    std::string mnt = dir + "/m/tree";
    (void)RunCommand("mkdir -p " + mnt);
    clip::MemoryCache mem(64 << 20);
    auto spans = std::make_shared<clip::TieredSpanSource>(
        tree.index, std::make_shared<clip::SpanInflater>(tree.index, *tree.blob),
        clip::CacheTiers{&mem, nullptr, nullptr, nullptr});
    auto id = server.Mount(mnt, std::make_shared<clip::LayerFs>(tree.index, spans)).value();
    auto [l1, n1] = Walk(dir + "/tree");
    auto [m1, k1] = Walk(mnt);
    auto [l2, n2] = Walk(dir + "/tree");
    auto [m2, k2] = Walk(mnt);
    printf(
        "2. find+lstat walk of %d entries: mount first %.3f s, second %.3f s; local disk "
        "(dentries warm) %.3f s, %.3f s; ratio mount/local first %.2f, second %.2f\n",
        k1, m1, m2, l1, l2, m1 / l1, m2 / l2);
    if (n1 != k1 || n2 != k2) printf("   WARNING: entry counts differ (%d vs %d)\n", n1, k1);
    (void)server.Unmount(id);
  }
  // 3. Cold first reads from a blob served by docker-registry.
  {
    auto registry = clip::testing::RegistryServer::Start({}).value();
    clip::RegistryClient::Options o;
    o.hosts = std::make_shared<clip::DefaultHosts>(std::set<std::string>{registry->host()});
    clip::RegistryClient client(o);
    auto ref = clip::Reference::Parse(registry->host() + "/bench/tree:v1").value();
    std::string raw = clip::testing::ReadFileOrEmpty(dir + "/tree.tar.gz");
    clip::Digest digest = clip::Digest::Of(raw);
    (void)client.PushBlob(ref, digest, raw);
    Layer tree = Load(dir + "/tree.tar.gz");
    clip::RegistryBlobReader remote(client, ref, digest, raw.size());
    clip::MemoryCache mem(64 << 20);
    auto spans = std::make_shared<clip::TieredSpanSource>(
        tree.index, std::make_shared<clip::SpanInflater>(tree.index, remote),
        clip::CacheTiers{&mem, nullptr, nullptr, nullptr});
    std::string mnt = dir + "/m/reg";
    (void)RunCommand("mkdir -p " + mnt);
    auto id = server.Mount(mnt, std::make_shared<clip::LayerFs>(tree.index, spans)).value();
    std::vector<std::string> files;
    std::string list = RunCommand("cd " + dir + "/tree && find usr -type f | sort").value();
    size_t pos = 0;
    while (pos < list.size()) {
      size_t nl = list.find('\n', pos);
      files.push_back(list.substr(pos, nl - pos));
      pos = nl + 1;
    }
    std::mt19937 rng(5);
    std::shuffle(files.begin(), files.end(), rng);
    std::vector<double> lat;
    for (int i = 0; i < 50; ++i) lat.push_back(ReadFile(mnt + "/" + files[i]) * 1000);
    (void)RunCommand("mkdir -p " + dir + "/m/pull-check");
    auto t = Clock::now();
    (void)RunCommand("mkdir -p " + dir + "/m/pull-check && curl -s " + registry->url() +
                     "/v2/bench/tree/blobs/" + digest.ToString() + " | tar -xzf - -C " + dir +
                     "/m/pull-check");
    double pull = Since(t);
    std::sort(lat.begin(), lat.end());
    printf(
        "3. cold first read of 50 random files from the registry blob: p50 %.1f ms, p99 "
        "%.1f ms, total %.2f s; full download+gunzip+untar of the layer %.2f s\n",
        lat[25], lat[49],
        [&] {
          double s = 0;
          for (double x : lat) s += x;
          return s / 1000;
        }(),
        pull);
    (void)server.Unmount(id);
  }
  // 4. Memory and threads per mounted layer.
  {
    Layer tree = Load(dir + "/tree.tar.gz");
    clip::MemoryCache mem(64 << 20);
    auto spans = std::make_shared<clip::TieredSpanSource>(
        tree.index, std::make_shared<clip::SpanInflater>(tree.index, *tree.blob),
        clip::CacheTiers{&mem, nullptr, nullptr, nullptr});
    long before = RssKb();
    int threads_before = Threads();
    std::vector<clip::FuseServer::MountId> ids;
    const int kMounts = 20;
    for (int i = 0; i < kMounts; ++i) {
      std::string mnt = absl::StrCat(dir, "/m/many", i);
      (void)RunCommand("mkdir -p " + mnt);
      // Each mount has its own LayerFs (own inode tables), as separate layers would.
      auto index = std::make_shared<const clip::index::v1::LayerIndex>(*tree.index);
      ids.push_back(server.Mount(mnt, std::make_shared<clip::LayerFs>(index, spans)).value());
    }
    long after = RssKb();
    printf(
        "4. %d mounts of a %d-entry layer: +%ld KiB RSS (%.0f KiB per layer, index %zu "
        "bytes on disk); threads %d -> %d\n",
        kMounts, tree.index->entries_size(), after - before,
        static_cast<double>(after - before) / kMounts, clip::EncodeIndex(*tree.index).size(),
        threads_before, Threads());
    for (auto id : ids) (void)server.Unmount(id);
  }
  (void)RunCommand("rm -rf " + dir);
  return 0;
}
