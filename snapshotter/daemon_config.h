// DaemonConfig: the settings of containerd-clip-grpc, from a TOML file
// (/etc/containerd-clip-grpc/config.toml by default) with command-line flags on top.
//
//   # /etc/containerd-clip-grpc/config.toml
//   root = "/var/lib/containerd-clip-grpc"
//   address = "/run/containerd-clip-grpc/containerd-clip-grpc.sock"
//   log_level = "info"        # debug, info, warning, error
//   hosts_dir = "/etc/containerd/certs.d"   # containerd hosts.toml directory (mirrors, CAs)
//   plain_http = ["127.0.0.1:5000"]          # registries reached over plain HTTP
//   cache_max_bytes = 10737418240            # disk span cache budget
//   memory_cache_bytes = 33554432            # in-memory span cache (decoded spans)
//   fuse_workers = 4                         # threads serving FUSE requests, all layers
//   readahead_spans = 6                      # spans fetched ahead of an in-order reader (0: off)
//   docker_config = "/root/.docker/config.json"  # registry credentials (auths, helpers)
//   metrics_address = "127.0.0.1:9102"       # Prometheus /metrics; or "unix:/run/clip.sock"
//   remote_cache = "http://cache.internal:8080"  # fleet-shared span + index cache (WebDAV)
//   index_trust = "bound"  # which clip indexes and access profiles this node believes:
//                          # "bound" those an image's binding proves (and its own);
//                          # "fleet" also other nodes' from the remote cache;
//                          # "referrers" also any referrer (README "Trust model")
//   cri_image_proxy = ""           # e.g. "/run/containerd-clip-grpc/cri-image.sock": a CRI
//                                  # image service for kubelet (--image-service-endpoint)
//                                  # that forwards to cri_image_upstream and keeps each
//                                  # pull's credentials in memory for its lazy reads
//   cri_image_upstream = "/run/containerd/containerd.sock"
//   local_trees = true             # a layer whose spans are all on disk becomes a plain
//                                  # directory tree overlayfs reads (no FUSE), its spans go
//                                  # (false: it stays a FUSE mount of cached spans)
//   passthrough = true             # with local_trees, on Linux 6.9+: a running container's
//                                  # files in a tree open in FUSE passthrough (the kernel
//                                  # reads the tree's file; README "Local trees") ...
//   passthrough_min_file_bytes = 262144  # ... in layers whose regular files average this
//                                  # much (every open costs a round trip on such a mount)
//   index_on_first_use = false     # index layers found without an index, in the background
//   index_small_file_interval = 0  # those indexes: a checkpoint per this many bytes of small
//                                  # files (0: off; at most 2 MiB; clipctl index
//                                  --small-file-interval)
//   containerd_root = "/var/lib/containerd"  # where containerd 1.6 looks for clip's image fs
//   takeover = true               # mounts and the socket survive daemon restarts
//   fd_store = "auto"             # where: "systemd" (its fd store), "holder" (clip-fd-holder),
//                                 # "auto" = systemd when $NOTIFY_SOCKET is set, else holder
//   fd_holder_socket = ""         # default <root>/fd-holder.sock
//   fd_holder_binary = ""         # default: clip-fd-holder beside the daemon's binary
//
//   [background_fill]              # make mounted layers local in the background
//   enabled = true
//   bytes_per_second = 52428800    # per layer; 0 = unlimited
//   concurrency = 2                # spans in flight per layer
//   delay_seconds = 10             # after the mount (the container's start is the busy time)
//
//   [access_profiles]              # record what a layer's first start reads; replay it
//   enabled = true
//   quiet_seconds = 5              # the recording ends once reads go quiet this long
//   max_seconds = 60               # or after this long
//   replay_concurrency = 8         # runs of spans fetched at once, across all layers
//   max_run_spans = 4              # adjacent spans fetched with one Range request
//
// A missing default file is fine (defaults apply); a missing file named explicitly, an
// unknown key or a value of the wrong type is an error (typos must not pass silently).
//
// Thread safety: a plain value.
#ifndef CLIP_SNAPSHOTTER_DAEMON_CONFIG_H_
#define CLIP_SNAPSHOTTER_DAEMON_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace clip {

inline constexpr char kDefaultConfigPath[] = "/etc/containerd-clip-grpc/config.toml";
inline constexpr char kDefaultRoot[] = "/var/lib/containerd-clip-grpc";
inline constexpr char kDefaultAddress[] = "/run/containerd-clip-grpc/containerd-clip-grpc.sock";

struct DaemonConfig {
  std::string root = kDefaultRoot;
  std::string address = kDefaultAddress;
  std::string log_level = "info";
  std::string hosts_dir;
  std::vector<std::string> plain_http;
  int64_t cache_max_bytes = int64_t{10} << 30;
  int64_t memory_cache_bytes = int64_t{32} << 20;  // 0: no memory tier
  int64_t fuse_workers = 4;                        // 1..256
  int64_t readahead_spans = 6;                     // 0..16
  std::string docker_config;          // empty: $DOCKER_CONFIG/config.json or ~/.docker/config.json
  std::string metrics_address;        // empty: no metrics endpoint
  std::string remote_cache;           // empty: no remote cache
  std::string index_trust = "bound";  // "bound", "fleet" or "referrers"
  std::string cri_image_proxy;        // empty: no CRI image proxy
  std::string cri_image_upstream = "/run/containerd/containerd.sock";
  bool index_on_first_use = false;
  bool local_trees = true;
  bool passthrough = true;
  int64_t passthrough_min_file_bytes = 256 << 10;
  int64_t index_small_file_interval = 0;
  // containerd's root: clip keeps <containerd_root>/io.containerd.snapshotter.v1.clip
  // (what containerd 1.6's CRI reports as the image filesystem) pointing at `root`.
  // Empty: leave it alone.
  std::string containerd_root = "/var/lib/containerd";
  // Takeover: every mount's /dev/fuse fd and the listening socket go to clip-fd-holder,
  // so a crash, restart or upgrade of the daemon never breaks a running container.
  bool takeover = true;
  std::string fd_store = "auto";  // "auto", "systemd" or "holder"
  std::string fd_holder_socket;   // empty: <root>/fd-holder.sock
  std::string fd_holder_binary;   // empty: clip-fd-holder beside this daemon's binary
  struct BackgroundFill {
    bool enabled = false;
    int64_t bytes_per_second = 0;
    int64_t concurrency = 2;
    double delay_seconds = 10;
  } background_fill;
  // Access profiles (issue 17): record what a layer's first start reads, replay it on
  // later mounts (also on other hosts, through the remote cache).
  struct AccessProfiles {
    bool enabled = true;
    double quiet_seconds = 5;        // recording ends once reads go quiet this long
    double max_seconds = 60;         // or after this long
    int64_t replay_concurrency = 8;  // runs fetched at once, all layers (1..64)
    int64_t max_run_spans = 4;       // adjacent spans per Range request (1..64)
  } access_profiles;
};

// Parses TOML text over the defaults.
absl::StatusOr<DaemonConfig> ParseDaemonConfig(const std::string& toml, const std::string& source);
// Reads `path`; `explicit_path` says whether the user named it (then it must exist).
absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path, bool explicit_path);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_DAEMON_CONFIG_H_
