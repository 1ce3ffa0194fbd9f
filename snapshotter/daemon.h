// Daemon: the clip snapshotter daemon's object graph, built from its configuration.
//
// Design. Running containers must never notice the daemon going away. Start takes the
// root's lock (`<root>/daemon.lock`, held for the process's life: a new daemon waits
// until the previous one is gone, so it never serves a connection the old one still
// reads), connects to the fd holder (starting `clip-fd-holder` if none listens) and
// takes back what a previous daemon left there: every lazy layer's live FUSE connection
// (taken over, see fs/fuse_server.h) and the listening gRPC socket (connections made
// while no daemon ran wait in its backlog). It then restores every remote snapshot
// (taking over its connection, or mounting it again when there is none: holder gone,
// reboot, unreadable state) before it accepts a call. New mounts and a new listening
// socket go to the holder the moment they exist, so SIGKILL and OOM kills are covered.
// Handover (SIGTERM, restarts, upgrades) stops serving and unmounts nothing;
// StopAndUnmount (a node drain) unmounts every layer and ends the holder.
//
//   CLIP_ASSIGN_OR_RETURN(std::unique_ptr<Daemon> d, Daemon::Start(config));
//   ... wait for a signal ...
//   d->Handover();  // or d->StopAndUnmount();
//
// Thread safety: Start, Handover and StopAndUnmount from one thread; accessors from any.
#ifndef CLIP_SNAPSHOTTER_DAEMON_H_
#define CLIP_SNAPSHOTTER_DAEMON_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/disk_cache.h"
#include "cache/memory_cache.h"
#include "cache/remote_cache.h"
#include "cache/write_back.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "fs/fd_holder.h"
#include "fs/fuse_server.h"
#include "fs/systemd_fd_store.h"
#include "grpcpp/grpcpp.h"
#include "lazy/tiered_span_source.h"
#include "registry/pulled_credentials.h"
#include "registry/registry_client.h"
#include "snapshotter/cri_image_proxy.h"
#include "snapshotter/daemon_config.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/remote_layers.h"
#include "snapshotter/service.h"

namespace clip {

// The name the listening gRPC socket has in the fd holder.
inline constexpr char kHeldListenerName[] = "grpc-listener";
// The CRI image proxy's pulled credentials in the fd holder: a sealed memfd (memory
// only) holding PulledCredentials::Serialize(), so a restart keeps running containers'
// lazy reads of private images authorized.
inline constexpr char kHeldCredentialsName[] = "cri-credentials";

class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(const DaemonConfig& config);
  ~Daemon();  // Handover() unless StopAndUnmount() ran
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Stops accepting and serving; every mount and the listening socket stay with the
  // holder for the next daemon.
  void Handover();
  // Stops, unmounts every lazy layer and ends the holder (nothing survives).
  void StopAndUnmount();

  // Lazy layers taken over from a previous daemon at Start, and restored in all.
  size_t adopted_layers() const { return fuse_->adopted(); }
  size_t mounted_layers() const { return remote_->mounted(); }
  bool listener_taken_over() const { return listener_taken_over_; }
  bool has_fd_store() const { return fd_store_ != nullptr; }

 private:
  explicit Daemon(DaemonConfig config) : config_(std::move(config)) {}
  absl::Status Init();
  absl::Status TakeLock();
  void ConnectFdStore(std::vector<HeldFd>* held);
  absl::Status Listen(std::vector<HeldFd>* held);
  // Takes the pulled credentials a previous daemon handed over out of `held`.
  void TakeOverCredentials(std::vector<HeldFd>* held);
  // Hands the pulled credentials as they are now to the fd store.
  void HandOverCredentials();
  void AcceptLoop();
  void StopServing();
  void AddMetrics();

  const DaemonConfig config_;
  int lock_fd_ = -1;
  std::unique_ptr<FdStore> fd_store_;  // clip-fd-holder or systemd's fd store
  pid_t holder_pid_ = 0;               // clip-fd-holder's process, when that is the store
  std::shared_ptr<PulledCredentials> pulled_credentials_;  // from the CRI image proxy
  absl::Mutex handover_mu_;  // one HandOverCredentials at a time (the newest state last)
  std::unique_ptr<RegistryClient> registry_;
  std::unique_ptr<DiskCache> disk_;
  std::unique_ptr<MemoryCache> memory_;
  std::unique_ptr<RemoteCache> remote_cache_;
  // After the stores it writes to: goes first, finishing its writes in flight.
  std::unique_ptr<WriteBack> write_back_;
  std::unique_ptr<ThreadPool> readahead_;
  std::unique_ptr<ThreadPool> replay_;  // access profile replays (runs in flight)
  std::unique_ptr<FuseServer> fuse_;
  std::unique_ptr<RemoteLayers> remote_;
  std::unique_ptr<OverlaySnapshotter> snapshotter_;
  std::unique_ptr<SnapshotsService> service_;
  std::unique_ptr<grpc::Server> server_;
  int listener_ = -1;
  bool listener_taken_over_ = false;
  int wake_[2] = {-1, -1};  // a pipe that ends the accept loop
  std::thread acceptor_;
  std::vector<MetricsRegistry::CollectorHandle> collectors_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<CriImageProxy> cri_image_proxy_;  // when cri_image_proxy is set
  bool started_ = false;                            // Init completed
  bool stopped_ = false;
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_DAEMON_H_
