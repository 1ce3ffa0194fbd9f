// The mount table as the kernel shows it in /proc/self/mountinfo: each mount's device,
// mountpoint, filesystem type and (overlayfs) lower directories.
//
//   std::vector<MountEntry> mounts = ParseMountinfo(ReadMountinfo());
//   const MountEntry* top = TopMountAt(mounts, "/var/lib/clip/snapshots/3/fs");
//
// Thread safety: free functions, no shared state.
#ifndef CLIP_COMMON_MOUNTINFO_H_
#define CLIP_COMMON_MOUNTINFO_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace clip {

struct MountEntry {
  std::string device;      // "major:minor"
  std::string mountpoint;  // unescaped
  std::string fstype;      // "ext4", "overlay", "fuse.clip", ...
  // An overlay's lower directories, top first: from `lowerdir=a:b` (the mount syscall)
  // or `lowerdir+=a,lowerdir+=b` (the new mount API); unescaped.
  std::vector<std::string> lowerdirs;
  int id = 0;      // the mount's id
  int parent = 0;  // the id of the mount it is mounted on (stacked: the one below)
};

// Every mount of `mountinfo` (the format of proc(5)), in its order (older mounts first);
// malformed lines are skipped.
std::vector<MountEntry> ParseMountinfo(absl::string_view mountinfo);
// /proc/self/mountinfo (empty if it cannot be read).
std::string ReadMountinfo();
// The mount a path lookup at `mountpoint` sees, or null: the one no other mount there is
// stacked on. (Usually the newest; a mount moved beneath another, MOVE_MOUNT_BENEATH,
// is newer than the one above it.)
const MountEntry* TopMountAt(const std::vector<MountEntry>& mounts, const std::string& mountpoint);
// `path` as mountinfo escapes it (space, tab, newline and backslash as \ooo).
std::string EscapeMountPath(absl::string_view path);

}  // namespace clip

#endif  // CLIP_COMMON_MOUNTINFO_H_
