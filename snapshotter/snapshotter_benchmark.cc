// snapshotter_benchmark: Prepare/Commit/Mounts/Stat latency over the unix socket (the
// daemon's service in this process, clients through gRPC), with 1 and 16 concurrent
// clients; p50/p99 per operation.
//
//   bazel build -c opt //snapshotter:snapshotter_benchmark
//   .bazel/bin/snapshotter/snapshotter_benchmark /var/tmp/clip-snap-bench [OPS_PER_CLIENT]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/subprocess.h"
#include "grpcpp/grpcpp.h"
#include "snapshotter/grpc_snapshotter.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/service.h"

namespace {
using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a) {
  return std::chrono::duration<double, std::milli>(Clock::now() - a).count();
}
double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}
}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/var/tmp/clip-snap-bench";
  int ops = argc > 2 ? atoi(argv[2]) : 100;
  (void)clip::testing::RunCommand("rm -rf " + dir + " && mkdir -p " + dir);
  auto core = clip::OverlaySnapshotter::Open(dir + "/root").value();
  clip::SnapshotsService service(*core);
  std::string sock = "/tmp/clip-snap-bench-" + std::to_string(getpid()) + ".sock";
  grpc::ServerBuilder b;
  b.AddListeningPort("unix:" + sock, grpc::InsecureServerCredentials());
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  // A committed base so Prepare has a parent, like containerd's layer chain.
  {
    clip::GrpcSnapshotter c("unix:" + sock);
    (void)c.Prepare("base-active", "", {});
    (void)c.Commit("base", "base-active", {});
  }
  printf("%d operations of each kind per client; latency in ms\n", ops);
  printf("%-8s %-8s %8s %8s\n", "clients", "op", "p50", "p99");
  for (int clients : {1, 16}) {
    std::map<std::string, std::vector<double>> lat;
    std::vector<std::map<std::string, std::vector<double>>> per(clients);
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        clip::GrpcSnapshotter s("unix:" + sock);
        for (int i = 0; i < ops; ++i) {
          std::string key = absl::StrCat("k-", clients, "-", c, "-", i);
          auto t = Clock::now();
          (void)s.Prepare(key, "base", {{"containerd.io/snapshot.ref", key}});
          per[c]["Prepare"].push_back(Ms(t));
          t = Clock::now();
          (void)s.Mounts(key);
          per[c]["Mounts"].push_back(Ms(t));
          t = Clock::now();
          (void)s.Commit(key + "-c", key, {});
          per[c]["Commit"].push_back(Ms(t));
          t = Clock::now();
          (void)s.Stat(key + "-c");
          per[c]["Stat"].push_back(Ms(t));
        }
      });
    }
    for (auto& t : threads) t.join();
    double secs = Ms(t0) / 1000;
    for (auto& m : per) {
      for (auto& [op, v] : m) lat[op].insert(lat[op].end(), v.begin(), v.end());
    }
    for (const char* op : {"Prepare", "Mounts", "Commit", "Stat"}) {
      printf("%-8d %-8s %8.2f %8.2f\n", clients, op, Pct(lat[op], 0.5), Pct(lat[op], 0.99));
    }
    printf("%-8d total    %.0f operations/s\n", clients, clients * ops * 4 / secs);
  }
  server->Shutdown();
  unlink(sock.c_str());
  (void)clip::testing::RunCommand("rm -rf " + dir);
  return 0;
}
