// registry_benchmark: 2 MiB Range GET latency (p50/p99) and throughput at 1, 4 and 16
// concurrent requests against a local docker-registry, for RegistryClient and for the
// curl command line doing the same requests (one process per stream, connection
// reused with --next), side by side in one run.
//
//   bazel run -c opt //registry:registry_benchmark -- [REQUESTS_PER_STREAM]
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "registry/registry_client.h"
#include "registry/testing/registry_server.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kRange = 2 << 20;
constexpr uint64_t kBlob = 256 << 20;

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

struct Result {
  std::vector<double> latency_ms;
  double seconds = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int per_stream = argc > 1 ? atoi(argv[1]) : 32;
  auto registry = clip::testing::RegistryServer::Start({});
  if (!registry.ok()) {
    fprintf(stderr, "%s\n", registry.status().ToString().c_str());
    return 1;
  }
  clip::RegistryClient::Options o;
  o.hosts = std::make_shared<clip::DefaultHosts>(std::set<std::string>{(*registry)->host()});
  clip::RegistryClient client(o);
  clip::Reference ref = *clip::Reference::Parse((*registry)->host() + "/bench/blob:v1");
  std::string blob(kBlob, '\0');
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < blob.size(); i += 8) {
    uint64_t x = rng();
    memcpy(&blob[i], &x, 8);
  }
  clip::Digest digest = clip::Digest::Of(blob);
  if (!client.PushBlob(ref, digest, blob).ok()) return 1;
  std::string url = absl::StrCat((*registry)->url(), "/v2/bench/blob/blobs/", digest.ToString());
  printf("blob %llu MiB on docker-registry %s; %d requests of 2 MiB per stream\n",
         static_cast<unsigned long long>(kBlob >> 20), (*registry)->host().c_str(), per_stream);
  printf("medians of 3 rounds after a warm-up round\n");
  printf("%-6s %-8s %10s %10s %12s\n", "conc", "client", "p50 ms", "p99 ms", "MB/s");

  constexpr int kRounds = 3;
  for (int conc : {1, 4, 16}) {
    std::vector<double> o50, o99, omb, c50, c99, cmb;
    for (int round = 0; round <= kRounds; ++round) {  // warm once, then measure
      // Offsets chosen up front, same for both clients.
      std::vector<std::vector<uint64_t>> offsets(conc);
      for (int s = 0; s < conc; ++s) {
        for (int i = 0; i < per_stream; ++i)
          offsets[s].push_back((rng() % (kBlob / kRange)) * kRange);
      }
      Result ours;
      {
        std::vector<std::vector<double>> lat(conc);
        std::atomic<int> errors{0};
        auto t0 = Clock::now();
        std::vector<std::thread> threads;
        for (int s = 0; s < conc; ++s) {
          threads.emplace_back([&, s] {
            for (uint64_t off : offsets[s]) {
              auto a = Clock::now();
              auto r = client.ReadBlobRange(ref, digest, off, kRange);
              lat[s].push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
              if (!r.ok() || r->size() != kRange) ++errors;
            }
          });
        }
        for (auto& t : threads) t.join();
        ours.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        for (auto& l : lat) ours.latency_ms.insert(ours.latency_ms.end(), l.begin(), l.end());
        if (errors) fprintf(stderr, "%d errors\n", errors.load());
      }
      Result curl;
      {
        auto t0 = Clock::now();
        std::vector<FILE*> procs;
        for (int s = 0; s < conc; ++s) {
          std::string cmd = "curl -s";
          for (size_t i = 0; i < offsets[s].size(); ++i) {
            if (i) cmd += " --next -s";
            absl::StrAppend(&cmd, " -r ", offsets[s][i], "-", offsets[s][i] + kRange - 1,
                            " -o /dev/null -w '%{time_total}\\n' ", url);
          }
          procs.push_back(popen(cmd.c_str(), "r"));
        }
        for (FILE* p : procs) {
          char line[64];
          while (fgets(line, sizeof(line), p)) curl.latency_ms.push_back(atof(line) * 1000);
          pclose(p);
        }
        curl.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      }
      if (round == 0) continue;
      double bytes = static_cast<double>(kRange) * conc * per_stream;
      o50.push_back(Pct(ours.latency_ms, 0.5));
      o99.push_back(Pct(ours.latency_ms, 0.99));
      omb.push_back(bytes / 1e6 / ours.seconds);
      c50.push_back(Pct(curl.latency_ms, 0.5));
      c99.push_back(Pct(curl.latency_ms, 0.99));
      cmb.push_back(bytes / 1e6 / curl.seconds);
    }
    // Medians over the rounds.
    printf("%-6d %-8s %10.2f %10.2f %12.0f\n", conc, "clip", Pct(o50, 0.5), Pct(o99, 0.5),
           Pct(omb, 0.5));
    printf("%-6d %-8s %10.2f %10.2f %12.0f\n", conc, "curl", Pct(c50, 0.5), Pct(c99, 0.5),
           Pct(cmb, 0.5));
    printf("%-6d ratio clip/curl: p50 %.2f, p99 %.2f, throughput %.2f\n", conc,
           Pct(o50, 0.5) / Pct(c50, 0.5), Pct(o99, 0.5) / Pct(c99, 0.5),
           Pct(omb, 0.5) / Pct(cmb, 0.5));
  }
  return 0;
}
