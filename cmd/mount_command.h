// `clipctl mount --index INDEX --layer LAYER_FILE_OR_BLOB_URL [--cache-dir DIR]
// MOUNTPOINT`: serves one layer through FUSE in the foreground until it is unmounted
// or the process gets SIGINT/SIGTERM (then it unmounts). LAYER is a local blob or a
// registry blob URL, `http[s]://HOST/v2/REPOSITORY/blobs/sha256:HEX`.
//
// Thread safety: call once per process (it owns the signal mask).
#ifndef CLIP_CMD_MOUNT_COMMAND_H_
#define CLIP_CMD_MOUNT_COMMAND_H_

#include <string>

#include "absl/status/status.h"

namespace clip {

struct MountCommandOptions {
  std::string index_path;
  std::string layer;  // file path or blob URL
  std::string mountpoint;
  std::string cache_dir;  // optional disk cache
  uint64_t memory_cache_bytes = 256 << 20;
  int threads = 4;
  // With a holder socket: the mount's fd goes to clip-fd-holder (started from
  // `holder_binary` if none listens), a later `clipctl mount` of the same mountpoint takes
  // the live connection over, and SIGTERM hands over instead of unmounting (SIGINT
  // still unmounts).
  std::string holder_socket;
  std::string holder_binary;
  // Instead of a holder: systemd's fd store ($NOTIFY_SOCKET; fds back as LISTEN_FDS).
  bool systemd_fd_store = false;
};

absl::Status MountCommand(const MountCommandOptions& options);

}  // namespace clip

#endif  // CLIP_CMD_MOUNT_COMMAND_H_
