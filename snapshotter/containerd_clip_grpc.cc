// containerd-clip-grpc: the clip snapshotter daemon. Serves containerd's snapshots v1
// API on a unix socket for a `proxy_plugins` entry:
//
//   [proxy_plugins.clip]
//     type = "snapshot"
//     address = "/run/containerd-clip-grpc/containerd-clip-grpc.sock"
//     [proxy_plugins.clip.exports]
//       root = "/var/lib/containerd-clip-grpc"
//
// The socket is created 0600 in a 0700 directory; a stale socket from a dead daemon is
// replaced, a live one is an error. SIGTERM/SIGINT stop serving and exit cleanly.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cache/disk_cache.h"
#include "cache/memory_cache.h"
#include "cache/remote_cache.h"
#include "cache/tiered_span_source.h"
#include "cmd/build_info.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "fs/fuse_server.h"
#include "grpcpp/grpcpp.h"
#include "snapshotter/daemon_config.h"
#include "snapshotter/image_fs_link.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/registry_setup.h"
#include "snapshotter/remote_layers.h"
#include "snapshotter/service.h"

namespace {

using clip::Log;

// systemd's readiness protocol (Type=notify): one datagram "READY=1" to the unix socket
// named by $NOTIFY_SOCKET ('@' = abstract namespace). Nothing when it is unset.
void NotifyReady() {
  const char* path = getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::min(strlen(path), sizeof(addr.sun_path) - 1);
  memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  const char msg[] = "READY=1";
  sendto(fd, msg, sizeof(msg) - 1, 0, reinterpret_cast<sockaddr*>(&addr),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  close(fd);
}
using clip::LogLevel;

// kAlreadyExists when another process accepts connections on `path`.
absl::Status PrepareSocketPath(const std::string& path) {
  std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", strerror(errno)));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a socket"));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  if (live) return absl::AlreadyExistsError(absl::StrCat("another daemon serves ", path));
  unlink(path.c_str());  // stale, from a daemon that died
  return absl::OkStatus();
}

LogLevel ParseLevel(const std::string& s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warning") return LogLevel::kWarning;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"containerd-clip-grpc: the clip remote snapshotter for containerd"};
  std::string config_path = clip::kDefaultConfigPath, root, address, log_level;
  bool version = false;
  auto* config_opt = app.add_option("--config", config_path, "TOML configuration file");
  app.add_option("--root", root, "Root directory (overrides the config)");
  app.add_option("--address", address, "Unix socket path (overrides the config)");
  std::string containerd_root;
  auto* croot_opt = app.add_option("--containerd-root", containerd_root,
                                   "containerd's root (overrides the config; \"\": none)");
  app.add_option("--log-level", log_level, "debug, info, warning or error");
  app.add_flag("--version", version, "Print the version and exit");
  bool check_config = false;
  app.add_flag("--check-config", check_config, "Validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::cout << clip::BuildInfo();
    return 0;
  }
  absl::StatusOr<clip::DaemonConfig> config =
      clip::LoadDaemonConfig(config_path, config_opt->count() > 0);
  if (!config.ok()) {
    std::cerr << "containerd-clip-grpc: " << config.status().message() << "\n";
    return 1;
  }
  if (!root.empty()) config->root = root;
  if (!address.empty()) config->address = address;
  if (croot_opt->count() > 0) config->containerd_root = containerd_root;
  if (!log_level.empty()) config->log_level = log_level;
  if (check_config) {
    std::cout << config_path << ": ok (root " << config->root << ", address " << config->address
              << ")\n";
    return 0;
  }
  clip::SetLogLevel(ParseLevel(config->log_level));

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts
  signal(SIGPIPE, SIG_IGN);

  // The lazy path: registry client (hosts.toml mirrors or plain-HTTP registries as
  // configured), span caches, one FUSE worker pool for every mounted layer.
  clip::RegistryClient registry(clip::RegistryOptionsFrom(*config));
  mkdir(config->root.c_str(), 0700);
  if (!config->containerd_root.empty()) {
    // containerd 1.6's CRI reports <containerd root>/io.containerd.snapshotter.v1.clip as
    // the image filesystem (it ignores exports.root); kubelet stats it.
    absl::StatusOr<std::string> link =
        clip::EnsureImageFsLink(config->containerd_root, config->root);
    if (link.ok()) {
      Log(LogLevel::kInfo, "daemon", absl::StrCat("image filesystem for containerd 1.6: ", *link));
    } else {
      Log(LogLevel::kWarning, "daemon",
          absl::StrCat("containerd 1.6 will report an image filesystem that does not exist: ",
                       link.status().message()));
    }
  }
  auto disk = clip::DiskCache::Open(
      {config->root + "/cache", static_cast<uint64_t>(config->cache_max_bytes)});
  if (!disk.ok()) {
    Log(LogLevel::kError, "daemon", disk.status().message());
    return 1;
  }
  clip::MemoryCache memory(static_cast<uint64_t>(config->memory_cache_bytes));
  std::unique_ptr<clip::RemoteCache> remote_cache;
  if (!config->remote_cache.empty()) {
    clip::RemoteCache::Options co;
    co.endpoint = config->remote_cache;
    remote_cache = std::make_unique<clip::RemoteCache>(co);
  }
  clip::FillExecutor executor;
  clip::FuseServer fuse(static_cast<int>(config->fuse_workers));
  clip::RemoteLayers::Options lo;
  lo.index_store = config->root + "/indexes";
  lo.registry = &registry;
  lo.fuse = &fuse;
  lo.tiers = clip::CacheTiers{&memory, disk->get(), remote_cache.get(), &executor};
  lo.remote_index = remote_cache.get();
  lo.index_on_first_use = config->index_on_first_use;
  if (config->background_fill.enabled) {
    clip::BackgroundFill::Options fo;
    fo.concurrency = static_cast<int>(config->background_fill.concurrency);
    fo.bytes_per_second = static_cast<uint64_t>(config->background_fill.bytes_per_second);
    lo.fill = fo;
    lo.fill_delay = absl::Seconds(config->background_fill.delay_seconds);
  }
  clip::RemoteLayers remote(lo);
  // Opening also remounts every remote snapshot, before the socket accepts anything.
  auto snapshotter = clip::OverlaySnapshotter::Open(config->root, &remote);
  if (!snapshotter.ok()) {
    Log(LogLevel::kError, "daemon", snapshotter.status().message());
    return 1;
  }
  absl::Status sock = PrepareSocketPath(config->address);
  if (!sock.ok()) {
    Log(LogLevel::kError, "daemon", sock.message());
    return 1;
  }
  // Prometheus metrics: RPCs (service), FUSE ops (fs), registry bytes (registry) report
  // into the process-wide registry themselves; caches and mounts are sampled here.
  using Type = clip::MetricsRegistry::Type;
  clip::MetricsRegistry& metrics = clip::DefaultMetrics();
  std::vector<clip::SpanStore*> tiers = {&memory, disk->get()};
  if (remote_cache) tiers.push_back(remote_cache.get());
  auto tier_metric = [&](const char* name, const char* help, Type type,
                         std::atomic<uint64_t> clip::TierCounters::*field) {
    return metrics.AddCollector(name, help, type, [tiers, field](auto* out) {
      for (clip::SpanStore* t : tiers) {
        out->push_back({{{"tier", t->name()}}, static_cast<double>((t->counters().*field).load())});
      }
    });
  };
  std::vector<clip::MetricsRegistry::CollectorHandle> collectors;
  collectors.push_back(tier_metric("clip_cache_hits_total", "Span cache hits", Type::kCounter,
                                   &clip::TierCounters::hits));
  collectors.push_back(tier_metric("clip_cache_misses_total", "Span cache misses", Type::kCounter,
                                   &clip::TierCounters::misses));
  collectors.push_back(tier_metric("clip_cache_read_bytes_total", "Bytes served by a cache tier",
                                   Type::kCounter, &clip::TierCounters::bytes_read));
  collectors.push_back(tier_metric("clip_cache_errors_total", "Cache tier failures",
                                   Type::kCounter, &clip::TierCounters::errors));
  collectors.push_back(tier_metric("clip_cache_corrupt_total", "Cache entries found corrupt",
                                   Type::kCounter, &clip::TierCounters::corrupt));
  collectors.push_back(tier_metric("clip_cache_evictions_total", "Cache entries evicted",
                                   Type::kCounter, &clip::TierCounters::evictions));
  collectors.push_back(metrics.AddCollector(
      "clip_mounted_layers", "Layers mounted lazily through FUSE", Type::kGauge,
      [&remote](auto* out) { out->push_back({{}, static_cast<double>(remote.mounted())}); }));
  std::unique_ptr<clip::MetricsServer> metrics_server;
  if (!config->metrics_address.empty()) {
    auto started = clip::MetricsServer::Start(config->metrics_address, &metrics);
    if (!started.ok()) {
      Log(LogLevel::kError, "daemon", absl::StrCat("metrics: ", started.status().message()));
      return 1;
    }
    metrics_server = *std::move(started);
    Log(LogLevel::kInfo, "daemon",
        absl::StrCat("metrics on ", metrics_server->address(), "/metrics"));
  }
  clip::SnapshotsService service(**snapshotter);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + config->address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  mode_t old = umask(0177);  // the socket: 0600
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old);
  if (!server) {
    Log(LogLevel::kError, "daemon", absl::StrCat("cannot listen on ", config->address));
    return 1;
  }
  chmod(config->address.c_str(), 0600);
  Log(LogLevel::kInfo, "daemon",
      absl::StrCat("serving snapshotter root=", config->root, " address=", config->address));
  NotifyReady();  // after remote snapshots are restored and the socket accepts calls
  int sig = 0;
  sigwait(&set, &sig);
  Log(LogLevel::kInfo, "daemon", absl::StrCat("signal ", sig, ": shutting down"));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  unlink(config->address.c_str());
  return 0;
}
