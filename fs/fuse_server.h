// FuseServer: serves any number of LayerFs mounts through libfuse's low-level API with
// one shared pool of worker threads.
//
// Design. Threads do not grow with mounts: every mount's /dev/fuse session fd is
// non-blocking and registered (EPOLLONESHOT) in one epoll set; each worker waits on
// that set, takes one request from whichever session is ready, re-arms the fd (so
// another worker can take that session's next request) and only then processes it.
// A thousand mounts cost a thousand fds, not a thousand threads. The callbacks only
// translate between libfuse and LayerFs; errors become errno here and nowhere else.
// Mounts are read-only with `allow_other,default_permissions` (the kernel enforces the
// modes), entries and attributes are cached for a day and file pages kept across opens
// (`keep_cache`): layers never change. A failed read is EIO, logged (rate-limited) with
// the layer and path. Each new mount's readahead window (its bdi's read_ahead_kb) is
// raised from the kernel's 128 KiB to kReadaheadKb, so sequential readers keep several
// 1 MiB READs in flight.
//
// Takeover. With an FdStore (clip-fd-holder, or systemd's fd store), every mount's
// /dev/fuse fd goes to it the moment it is mounted, with the kernel's FUSE_INIT (and the
// passthrough table of a passthrough mount). A later server (a new daemon) is offered
// what the store holds (OfferHeld); Mount of an offered mountpoint then takes that live
// connection over instead of mounting (fs/fuse_handover.h says how). Detach (SIGTERM)
// stops serving and unmounts nothing; the holder keeps the connections.
// REQUIRES for a takeover: no other process serves the connection any more (the daemon
// holds its root's lock, released only when the previous daemon is gone).
//
// Files, by concept: fuse_server.cc (the worker pool and a mount's life), fuse_handover
// (taking held connections over), fuse_ops (the libfuse callbacks and custom I/O),
// fuse_mount.h (the per-mount state they share), passthrough.h (FUSE passthrough).
//
//   FuseServer server(/*threads=*/4, holder);
//   server.OfferHeld(std::move(held));  // a new daemon: what the holder holds
//   CLIP_ASSIGN_OR_RETURN(FuseServer::MountId id, server.Mount("/mnt/layer", fs));
//   ...
//   server.Unmount(id);                 // unmounts, and the holder lets go
//
// Thread safety: Mount/Unmount/Wait are safe to call from any thread, but not
// WaitUnmounted and Unmount of the same mount at once (Unmount frees the mount's state).
// Lock order: mu_ before Mounted::mu; neither is held while a request is processed or a
// reply is sent.
#ifndef CLIP_FS_FUSE_SERVER_H_
#define CLIP_FS_FUSE_SERVER_H_

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "fs/fd_holder.h"
#include "fs/layer_fs.h"

namespace clip {

struct FuseMount;

class FuseServer {
 public:
  using MountId = uint64_t;

  // `holder` (optional, must outlive the server): where mounts' fds go for a takeover.
  explicit FuseServer(int threads = 4, FdStore* holder = nullptr);
  ~FuseServer();  // Unmounts everything still mounted, unless Detach()ed.
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Connections a previous server left in the store (FdStore::List); the server
  // owns their fds from now on. Entries whose name is not an absolute path are ignored.
  void OfferHeld(std::vector<HeldFd> held);
  // Takes over the offered connection of `mountpoint` if there is one, else mounts
  // (detaching a stale mount left there first) and hands the fd to the holder.
  // `passthrough` (a new mount): negotiate FUSE passthrough where the kernel offers it,
  // so that files of the layer open onto its tree's files once it has one
  // (LayerFs::UseTree); the price is a round trip per open (zero-message opens without).
  // A connection taken over keeps what its first server negotiated.
  absl::StatusOr<MountId> Mount(const std::string& mountpoint, std::shared_ptr<const LayerFs> fs,
                                bool passthrough = false);
  // Offered connections no Mount took over: unmounted and dropped from the holder.
  void DropUnclaimed();
  // True while a live connection for `mountpoint` is offered (a container started on it
  // before this server may still read through it).
  bool Offered(const std::string& mountpoint) const;
  // Lazy unmount (MNT_DETACH): returns even while files are open; the session ends
  // when the kernel lets go. The holder lets go of its fd.
  absl::Status Unmount(MountId id);
  // The mount leaves its mountpoint (MNT_DETACH), `replacement` (a directory: the
  // layer's tree) is bound there in its place, and the connection is still served for
  // whoever holds the mount (a running container's overlayfs does): once the kernel
  // lets go of it (the last such container stopped), the session ends and the holder
  // lets go of its fd. For a connection taken over already detached (or ended), only
  // the second half: the replacement is bound if nothing is there. Unmount of the id
  // stays valid (and unmounts the replacement).
  absl::Status DetachFrom(MountId id, const std::string& replacement);
  // True once mount `id` left its mountpoint: DetachFrom, or taken over from a server
  // that had detached it.
  bool Detached(MountId id) const;
  // True once mount `id` has ended (the kernel let go, or it was unmounted).
  bool Ended(MountId id) const;
  // Handover: finishes the requests being served, stops reading, unmounts nothing
  // (the holder keeps every connection for the next server). Unmount is a no-op after.
  void Detach();
  // How many mounts were taken over rather than mounted.
  size_t adopted() const;
  // True if mount `id` is a live connection taken over, not a new mount.
  bool IsAdopted(MountId id) const;
  // Blocks until the mount has ended (unmounted by anyone) or `timeout` passes; true
  // for a mount Unmount has freed.
  bool WaitUnmounted(MountId id, absl::Duration timeout);
  size_t mounts() const;
  int threads() const { return static_cast<int>(workers_.size()); }

  using Mounted = FuseMount;  // per-mount state (fs/fuse_mount.h)

  // The readahead window given to every new mount (two ~2 MiB spans).
  static constexpr int kReadaheadKb = 4096;

 private:
  void Worker();
  void SetReadahead(const std::string& mountpoint);
  void Retire(Mounted* m);
  void DropHeld(Mounted* m);  // the holder lets go of the mount's fd and table
  // One of a mount's flags guarded by its mu; `if_freed` for a mount Unmount freed.
  bool MountState(MountId id, bool Mounted::*flag, bool if_freed) const;
  absl::Status MountFresh(Mounted* m, bool passthrough);
  // Takes `table` (the connection's passthrough table, if held; its fd becomes -1 once
  // used) only when the connection is taken over.
  absl::Status Adopt(Mounted* m, HeldFd held, std::optional<HeldFd>& table);
  void StartPassthrough(Mounted* m);
  absl::StatusOr<MountId> Serve(std::unique_ptr<Mounted> m);

  FdStore* const holder_;
  int epoll_fd_ = -1;
  mutable absl::Mutex mu_;
  std::map<MountId, std::unique_ptr<Mounted>> mounts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, HeldFd> offered_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, HeldFd> offered_tables_ ABSL_GUARDED_BY(mu_);  // by mountpoint
  MountId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  size_t adopted_ ABSL_GUARDED_BY(mu_) = 0;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
  RateLimitedLog readahead_log_{absl::Minutes(10)};
  RateLimitedLog passthrough_log_{absl::Hours(24)};
};

}  // namespace clip

#endif  // CLIP_FS_FUSE_SERVER_H_
