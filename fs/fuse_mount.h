// FuseMount: the state of one FUSE mount of a FuseServer, shared by the server (its
// life: mount, takeover, unmount), its libfuse callbacks (fs/fuse_ops.h: session
// userdata) and its custom I/O. Internal to fs/.
//
// Thread safety: fields above `mu` are set before the mount is served and read-only
// after (but `init` and `capture_init`, used by the first read only, and the
// passthrough table, safe for concurrent use itself); the rest under `mu`.
#ifndef CLIP_FS_FUSE_MOUNT_H_
#define CLIP_FS_FUSE_MOUNT_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "fs/layer_fs.h"
#include "fs/passthrough.h"

struct fuse_session;

namespace clip {

struct FuseMount {
  std::string mountpoint;
  std::shared_ptr<const LayerFs> fs;
  fuse_session* se = nullptr;
  int fd = -1;
  // The kernel's FUSE_INIT request as read (raw bytes), for a later takeover; filled by
  // the custom read while `capture_init` (only in Mount, before any worker reads).
  std::string init;
  bool capture_init = false;
  bool adopted = false;
  // Opens are answered (not ENOSYS) and counted here, in passthrough where the tree has
  // the file; null: zero-message opens (passthrough off, unavailable, or taken over
  // without the table).
  std::unique_ptr<PassthroughTable> passthrough;
  std::atomic<bool> backing_failed{false};  // a backing file was refused: cached opens only
  absl::Mutex mu;
  bool closing ABSL_GUARDED_BY(mu) = false;
  bool detached ABSL_GUARDED_BY(mu) = false;  // DetachFrom: served until the kernel lets go
  bool ended ABSL_GUARDED_BY(mu) = false;
  int inflight ABSL_GUARDED_BY(mu) = 0;
  RateLimitedLog log{absl::Seconds(10)};
};

}  // namespace clip

#endif  // CLIP_FS_FUSE_MOUNT_H_
