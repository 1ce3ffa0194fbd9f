// The FUSE fd handover: what a FuseServer keeps in the fd store (FdStore) per mount so
// that a later server (a new daemon) takes the live connection over, and how it does.
//
// Held entries (name -> data + fd):
// - `<mountpoint>` -> kHeldPrefix + the kernel's FUSE_INIT request (raw) + /dev/fuse fd;
// - kTableName + `<mountpoint>` -> kTableData + the mount's passthrough table (a memfd,
//   fs/passthrough.h), for mounts that negotiated passthrough. The name has no ':'
//   (systemd's store refuses it) and is no path, so servers before it ignore it.
//
// Takeover (FuseServer::Adopt, in fuse_handover.cc): a session with the same custom I/O
// on the held fd is fed the saved INIT under kReplayUnique, a unique the kernel never
// uses (FuseIo drops the reply), so libfuse negotiates exactly what the first server
// did without a new INIT; then FUSE_NOTIFY_RESEND makes the kernel queue again every
// request the dead server had read but not answered. Inode numbers, handles (0, or the
// passthrough mode) and readdir offsets mean the same in every server, so the kernel's
// cached inodes, dentries and open files stay valid.
//
// Thread safety: constants and pure functions.
#ifndef CLIP_FS_FUSE_HANDOVER_H_
#define CLIP_FS_FUSE_HANDOVER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace clip {

// The unique of the replayed INIT: the kernel's uniques count by 2 and use bits 0 and
// 63 as flags, so this never collides.
inline constexpr uint64_t kReplayUnique = uint64_t{1} << 62;
// A mount's entry: this prefix (the layout version), then the INIT.
inline constexpr absl::string_view kHeldPrefix = "clip-fuse-init-v1\n";
inline constexpr absl::string_view kTableName = "passthrough-table";
inline constexpr absl::string_view kTableData = "clip-passthrough-v1";

// The entry name of the passthrough table of `mountpoint`.
std::string TableName(const std::string& mountpoint);
// The mountpoint whose table entry `name` is, if it is one.
std::optional<std::string> MountpointOfTable(absl::string_view name);

}  // namespace clip

#endif  // CLIP_FS_FUSE_HANDOVER_H_
