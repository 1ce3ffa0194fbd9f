#include "fs/mount_stack.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/mountinfo.h"

namespace clip {
namespace {

// Newer than glibc 2.36's <sys/mount.h>.
#ifdef MOVE_MOUNT_BENEATH
constexpr unsigned kMoveMountBeneath = MOVE_MOUNT_BENEATH;
#else
constexpr unsigned kMoveMountBeneath = 0x00000200;
#endif

}  // namespace

bool ClipFuseOnTop(const std::string& mountpoint) {
  const std::vector<MountEntry> mounts = ParseMountinfo(ReadMountinfo());
  const MountEntry* top = TopMountAt(mounts, mountpoint);
  return top != nullptr && top->fstype == kClipFuseType;
}

absl::Status BindBeneath(const std::string& dir, const std::string& mountpoint) {
  // A detached copy of `dir` (a bind mount attached nowhere yet), then attached.
  int fd = open_tree(AT_FDCWD, dir.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open_tree ", dir));
  if (move_mount(fd, "", AT_FDCWD, mountpoint.c_str(),
                 MOVE_MOUNT_F_EMPTY_PATH | kMoveMountBeneath) != 0) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("bind ", dir, " beneath ", mountpoint));
    close(fd);  // the copy goes with its last reference
    return st;
  }
  close(fd);
  return absl::OkStatus();
}

absl::Status ReplaceTopMount(const std::string& dir, const std::string& mountpoint) {
  const std::vector<MountEntry> mounts = ParseMountinfo(ReadMountinfo());
  const MountEntry* top = TopMountAt(mounts, mountpoint);
  if (top == nullptr) return absl::NotFoundError(absl::StrCat("no mount at ", mountpoint));
  const bool beneath_already = std::any_of(mounts.begin(), mounts.end(), [&](const MountEntry& e) {
    return e.id == top->parent && e.mountpoint == mountpoint;
  });
  absl::Status beneath = beneath_already ? absl::OkStatus() : BindBeneath(dir, mountpoint);
  if (!beneath.ok()) {
    static RateLimitedLog log(absl::Hours(24));
    log.Log(LogLevel::kInfo, "fs",
            absl::StrCat(beneath.message(), ": the mount there leaves first, then ", dir,
                         " is bound (a moment with neither)"));
  }
  if (umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("unmount ", top->fstype, " at ", mountpoint));
  }
  if (!beneath.ok() && mount(dir.c_str(), mountpoint.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("bind ", dir, " at ", mountpoint));
  }
  return absl::OkStatus();
}

int UnmountStack(const std::string& mountpoint) {
  // Bounded: a mountpoint holds a few of its owner's mounts, never many.
  int n = 0;
  while (n < 16 && umount2(mountpoint.c_str(), MNT_DETACH) == 0) ++n;
  return n;
}

}  // namespace clip
