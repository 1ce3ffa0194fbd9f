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
// replaced, a live one is an error. The wiring is snapshotter/daemon.h; this file parses
// flags, waits for a signal and stops: SIGTERM/SIGINT hand over to the next daemon (every
// mount and the socket stay alive in clip-fd-holder), SIGUSR1 unmounts every layer and
// ends the holder (a node drain).
#include <malloc.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/build_info.h"
#include "common/logging.h"
#include "snapshotter/daemon.h"
#include "snapshotter/daemon_config.h"

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
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts
  signal(SIGPIPE, SIG_IGN);

  // Two malloc arenas, not one per core and thread: the FUSE workers, fetchers and
  // inflaters each free span buffers another allocated, and every extra arena kept its
  // own free memory (bench_read: 193 -> 172 MB after a whole-image read, no slower).
  mallopt(M_ARENA_MAX, 2);
  absl::StatusOr<std::unique_ptr<clip::Daemon>> daemon = clip::Daemon::Start(*config);
  // Freed span buffers (about 2 MiB each, evicted or dropped for a tree) stay in glibc's
  // heap, so the daemon's RSS would stay at its peak: every few seconds what is free goes
  // back to the kernel. (Mapping each buffer on its own instead costs the read path its
  // page faults: 11 % on bench_read's whole-image read.)
  std::thread([] {
    for (;;) {
      absl::SleepFor(absl::Seconds(5));
      malloc_trim(0);
    }
  }).detach();
  if (!daemon.ok()) {
    Log(LogLevel::kError, "daemon", daemon.status().message());
    return 1;
  }
  NotifyReady();  // after remote snapshots are restored and the socket is served
  int sig = 0;
  sigwait(&set, &sig);
  if (sig == SIGUSR1) {
    Log(LogLevel::kInfo, "daemon", "SIGUSR1: stopping and unmounting every layer");
    (*daemon)->StopAndUnmount();
  } else {
    Log(LogLevel::kInfo, "daemon",
        absl::StrCat(strsignal(sig), ": handing over to the next daemon (SIGUSR1 unmounts)"));
    (*daemon)->Handover();
  }
  daemon->reset();
  return 0;
}
