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
// the layer and path.
//
//   FuseServer server(/*threads=*/4);
//   CLIP_ASSIGN_OR_RETURN(FuseServer::MountId id, server.Mount("/mnt/layer", fs));
//   ...
//   server.Unmount(id);
//
// Thread safety: Mount/Unmount/Wait are safe to call from any thread. Lock order:
// mu_ before nothing; never held while a request is processed or a reply is sent.
#ifndef CLIP_FS_FUSE_SERVER_H_
#define CLIP_FS_FUSE_SERVER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fs/layer_fs.h"

namespace clip {

// The errno a Status becomes at the FUSE edge.
int StatusToErrno(const absl::Status& status);

class FuseServer {
 public:
  using MountId = uint64_t;

  explicit FuseServer(int threads = 4);
  ~FuseServer();  // Unmounts everything still mounted.
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  absl::StatusOr<MountId> Mount(const std::string& mountpoint, std::shared_ptr<const LayerFs> fs);
  // Lazy unmount (MNT_DETACH): returns even while files are open; the session ends
  // when the kernel lets go.
  absl::Status Unmount(MountId id);
  // Blocks until the mount has ended (unmounted by anyone) or `timeout` passes.
  bool WaitUnmounted(MountId id, absl::Duration timeout);
  size_t mounts() const;
  int threads() const { return static_cast<int>(workers_.size()); }

  struct Mounted;  // per-mount state, used by the callbacks

 private:
  void Worker();
  void Retire(Mounted* m);

  int epoll_fd_ = -1;
  mutable absl::Mutex mu_;
  std::map<MountId, std::unique_ptr<Mounted>> mounts_ ABSL_GUARDED_BY(mu_);
  MountId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace clip

#endif  // CLIP_FS_FUSE_SERVER_H_
