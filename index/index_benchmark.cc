// index_benchmark: index build time vs `gzip -dc`, cold random 4 KiB read latency,
// sequential read throughput through the reader vs `gzip -dc`, and index size, on one
// layer file. Build and gunzip runs alternate; medians are reported.
//
//   bazel run -c opt //index:index_benchmark -- LAYER.tar.gz [RUNS]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/digest.h"
#include "common/file_blob_reader.h"
#include "index/gzip_checkpoint.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "index/layer_reader.h"
#include "index/span_inflater.h"
#include "index/span_source.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

double TimeGunzip(const std::string& path) {
  auto t0 = Clock::now();
  std::string cmd = "gzip -dc '" + path + "' > /dev/null";
  if (system(cmd.c_str()) != 0) {
    fprintf(stderr, "gzip -dc failed\n");
    exit(1);
  }
  return Seconds(t0, Clock::now());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: index_benchmark LAYER.tar.gz [RUNS]\n");
    return 2;
  }
  std::string path = argv[1];
  int runs = argc > 2 ? atoi(argv[2]) : 5;
  auto blob = clip::FileBlobReader::Open(path);
  if (!blob.ok()) {
    fprintf(stderr, "%s\n", blob.status().ToString().c_str());
    return 1;
  }
  std::vector<double> build, gunzip;
  clip::index::v1::LayerIndex index;
  for (int i = 0; i < runs; ++i) {
    gunzip.push_back(TimeGunzip(path));
    auto t0 = Clock::now();
    auto built = clip::BuildLayerIndex(**blob);
    build.push_back(Seconds(t0, Clock::now()));
    if (!built.ok()) {
      fprintf(stderr, "%s\n", built.status().ToString().c_str());
      return 1;
    }
    index = *std::move(built);
  }
  double usize = static_cast<double>(index.uncompressed_size());
  size_t index_bytes = clip::EncodeIndex(index).size();
  printf("layer: %s, %.1f MB compressed, %.1f MB uncompressed, %d entries, %d checkpoints\n",
         path.c_str(), index.compressed_size() / 1e6, usize / 1e6, index.entries_size(),
         index.checkpoints_size());
  printf(
      "index build: median %.3f s (%.0f MB/s uncompressed); gzip -dc: median %.3f s; "
      "ratio build/gunzip %.2f (runs %d)\n",
      Median(build), usize / 1e6 / Median(build), Median(gunzip), Median(build) / Median(gunzip),
      runs);
  printf("index size: %zu bytes = %.3f%% of uncompressed\n", index_bytes,
         100.0 * index_bytes / usize);

  auto shared = std::make_shared<const clip::index::v1::LayerIndex>(index);
  auto spans = std::make_shared<clip::SpanInflater>(shared, **blob);
  // Cold random 4 KiB reads: a fresh reader each time, so every read inflates its span.
  std::mt19937_64 rng(7);
  std::vector<double> lat;
  std::string buf(4096, '\0');
  for (int i = 0; i < 500; ++i) {
    clip::LayerReader reader(shared, spans);
    uint64_t off = rng() % (index.uncompressed_size() - 4096);
    auto t0 = Clock::now();
    auto n = reader.ReadAt(off, absl::MakeSpan(buf));
    lat.push_back(Seconds(t0, Clock::now()) * 1000);
    if (!n.ok()) {
      fprintf(stderr, "%s\n", n.status().ToString().c_str());
      return 1;
    }
  }
  printf("cold random 4 KiB read: p50 %.2f ms, p99 %.2f ms, max %.2f ms (500 reads)\n",
         Percentile(lat, 0.5), Percentile(lat, 0.99), Percentile(lat, 1.0));

  // Where a cold read's time goes, per span: fetching the compressed bytes, inflating
  // the window, inflating the span (ISA-L), and sha256 alone (overlapped in GetSpan).
  {
    std::vector<double> fetch_ms, window_ms, inflate_ms, sha_ms, span_mb;
    for (size_t i = 0; i + 1 < clip::SpanCount(index) && fetch_ms.size() < 100; i += 3) {
      const auto& cp = index.checkpoints(static_cast<int>(i));
      clip::SpanInfo info = clip::GetSpanInfo(index, i);
      uint64_t start = cp.compressed_offset() - (cp.bits() ? 1 : 0);
      std::string input(index.checkpoints(static_cast<int>(i + 1)).compressed_offset() - start,
                        '\0');
      auto t0 = Clock::now();
      if (!clip::ReadExactly(**blob, start, absl::MakeSpan(input)).ok()) return 1;
      auto t1 = Clock::now();
      std::string window;
      if (!cp.window().empty()) window = *clip::DecompressWindow(cp.window());
      auto t2 = Clock::now();
      std::string out(info.size, '\0');
      if (!clip::InflateFromCheckpoint(input, cp.bits(), window, absl::MakeSpan(out)).ok()) {
        return 1;
      }
      auto t3 = Clock::now();
      (void)clip::Digest::Of(out);
      auto t4 = Clock::now();
      fetch_ms.push_back(Seconds(t0, t1) * 1000);
      window_ms.push_back(Seconds(t1, t2) * 1000);
      inflate_ms.push_back(Seconds(t2, t3) * 1000);
      sha_ms.push_back(Seconds(t3, t4) * 1000);
      span_mb.push_back(info.size / 1e6);
    }
    printf(
        "cold span breakdown (p50 of %zu spans of p50 %.2f MB): fetch %.2f ms, window %.2f "
        "ms, inflate %.2f ms, sha256 %.2f ms\n",
        fetch_ms.size(), Percentile(span_mb, 0.5), Percentile(fetch_ms, 0.5),
        Percentile(window_ms, 0.5), Percentile(inflate_ms, 0.5), Percentile(sha_ms, 0.5));
  }

  // Sequential read of the whole stream in 1 MiB reads vs gzip -dc.
  std::vector<double> seq, gz2;
  buf.assign(1 << 20, '\0');
  for (int i = 0; i < runs; ++i) {
    gz2.push_back(TimeGunzip(path));
    clip::LayerReader reader(shared, spans);
    auto t0 = Clock::now();
    for (uint64_t off = 0; off < index.uncompressed_size();) {
      auto n = reader.ReadAt(off, absl::MakeSpan(buf));
      if (!n.ok() || *n == 0) return 1;
      off += *n;
    }
    seq.push_back(Seconds(t0, Clock::now()));
  }
  printf(
      "sequential read (1 MiB reads, verified): median %.3f s (%.0f MB/s); gzip -dc median "
      "%.3f s; ratio read/gunzip %.2f\n",
      Median(seq), usize / 1e6 / Median(seq), Median(gz2), Median(seq) / Median(gz2));
  return 0;
}
