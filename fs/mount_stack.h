// The mounts stacked at one mountpoint, changed without a moment showing none of them.
//
// BindBeneath binds a directory beneath the top mount at a mountpoint (move_mount(2)
// with MOVE_MOUNT_BENEATH, Linux 6.5). Once the top mount is lazily unmounted the
// directory is there: a path lookup at the mountpoint sees the old mount or the
// directory, never the empty mountpoint between an unmount and a bind.
//
//   CLIP_RETURN_IF_ERROR(BindBeneath(tree, mountpoint));
//   umount2(mountpoint.c_str(), MNT_DETACH);  // the tree shows through
//
// ReplaceTopMount does both: the top mount leaves, a directory shows in its place.
// UnmountStack lazily unmounts every mount stacked at a mountpoint. Both are for a
// mountpoint whose mounts are all its owner's (a snapshot's FUSE mount and its tree).
//
// Thread safety: free functions; the mount table is the kernel's.
#ifndef CLIP_FS_MOUNT_STACK_H_
#define CLIP_FS_MOUNT_STACK_H_

#include <string>

#include "absl/status/status.h"

namespace clip {

// The filesystem type of clip's FUSE mounts, as mount(2) is given it and mountinfo shows it.
inline constexpr char kClipFuseType[] = "fuse.clip";

// True when the mount a lookup at `mountpoint` sees is one of clip's FUSE mounts.
bool ClipFuseOnTop(const std::string& mountpoint);

// An error (EINVAL before Linux 6.5, or where the kernel refuses: no mount at
// `mountpoint`, a locked mount) leaves the mount table as it was.
absl::Status BindBeneath(const std::string& dir, const std::string& mountpoint);

// The top mount at `mountpoint` leaves (MNT_DETACH) and `dir` shows there instead:
// bound beneath it first where the kernel can, or kept if a mount is beneath it already
// (an earlier attempt died between the two steps); else bound right after the unmount
// (a moment with neither; logged once a day). An error if nothing is mounted there or
// the unmount fails.
absl::Status ReplaceTopMount(const std::string& dir, const std::string& mountpoint);

// How many mounts left (MNT_DETACH: files open on them stay readable).
int UnmountStack(const std::string& mountpoint);

}  // namespace clip

#endif  // CLIP_FS_MOUNT_STACK_H_
