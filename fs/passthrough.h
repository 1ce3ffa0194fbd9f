// FUSE passthrough (Linux 6.9+): a file whose data is in the layer's tree is opened by the
// kernel straight onto the tree's file, so its reads never reach this daemon and use the
// tree's own page cache and readahead.
//
// Protocol (protocol 7.40; Debian 12's linux/fuse.h and libfuse 3.14 stop before it, so the
// few facts are here, and FuseServer patches libfuse's replies in its custom I/O):
// - FUSE_INIT: the kernel offers FUSE_PASSTHROUGH (bit 37, flags2 bit 5); the reply turns
//   it on with FUSE_INIT_EXT, the bit, and max_stack_depth 1 (the FUSE superblock then
//   stacks at depth 1, so overlayfs on top reaches the kernel's limit of 2 and a backing
//   file must live at depth 0, e.g. ext4 or xfs).
// - The server registers a backing file with ioctl(FUSE_DEV_IOC_BACKING_OPEN) on the
//   connection's /dev/fuse fd (CAP_SYS_ADMIN) and gets an id, valid in the connection
//   (not the process), until closed or the connection ends.
// - An OPEN reply with FOPEN_PASSTHROUGH and that id in fuse_open_out.backing_id opens
//   the file in passthrough. The kernel allows one backing file per inode, and no
//   passthrough open while the inode is open in cached mode (or the reverse): the
//   open fails with EIO for the caller. So the server counts each inode's open files
//   by mode (RELEASE says which, through the handle) and keeps one id per inode.
//
// PassthroughTable is that count, per inode, in a memfd shared with the fd store: a
// daemon that takes the connection over maps the same memory and knows exactly which
// inode is open in which mode and with which id. Layout (native endian, version 1):
//
// | offset | size | field |
// |---|---|---|
// | 0 | 8 | magic `clippt01` |
// | 8 | 8 | inodes N (inode numbers 1..N) |
// | 8 + 8*i | 8 | inode i (1..N): bits 0-31 opens (int32: > 0 cached, < 0 passthrough), bits 32-63
// backing id (0: none) |
//
// Crash safety: an OPEN changes the count before its reply, a RELEASE after its reply,
// so a daemon killed in between leaves a count that is too high (the kernel resends the
// OPEN, or the RELEASE was answered): an inode may stay in cached mode longer than it
// must, never open in a mode the kernel refuses. Ids are never closed while the mount
// lives (the kernel frees them with the connection): a reply may carry an id at any time.
//
// Thread safety: PassthroughTable is safe for concurrent use (per-inode updates under
// striped mutexes; one process uses a table at a time, by the daemon's root lock).
#ifndef CLIP_FS_PASSTHROUGH_H_
#define CLIP_FS_PASSTHROUGH_H_

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace clip {

// True if the kernel's FUSE_INIT request (raw, with its 40-byte header) offers passthrough.
bool InitOffersPassthrough(absl::string_view init_request);
// Turns passthrough on in libfuse's FUSE_INIT reply (`iov` as given to the custom writev:
// the out header, then fuse_init_out); false if the reply is too short to carry it.
bool EnablePassthroughInReply(iovec* iov, int count);
// Puts FOPEN_PASSTHROUGH and `backing_id` into libfuse's OPEN reply; false if `iov` is
// not one.
bool SetBackingIdInOpenReply(iovec* iov, int count, int32_t backing_id);
// Registers `fd` (a regular file) as a backing file of the connection `fuse_fd`: its id.
absl::StatusOr<int32_t> OpenBacking(int fuse_fd, int fd);

// File handles of opens with a reply: the mode, so RELEASE knows which count to change.
inline constexpr uint64_t kCachedHandle = 1;
inline constexpr uint64_t kPassthroughHandle = 2;

class PassthroughTable {
 public:
  // A new table for inodes 1..`inodes` in a new memfd, all closed.
  static absl::StatusOr<std::unique_ptr<PassthroughTable>> Create(uint64_t inodes);
  // The table a previous server left in `fd` (taken: closed with the table). kDataLoss
  // if it is not one.
  static absl::StatusOr<std::unique_ptr<PassthroughTable>> Attach(int fd);
  ~PassthroughTable();
  PassthroughTable(const PassthroughTable&) = delete;
  PassthroughTable& operator=(const PassthroughTable&) = delete;

  // The memfd (for the fd store; still owned by the table).
  int fd() const { return fd_; }
  uint64_t inodes() const { return inodes_; }

  struct Opened {
    uint64_t handle = kCachedHandle;  // kCachedHandle or kPassthroughHandle
    int32_t backing_id = 0;           // with kPassthroughHandle
  };
  // Decides an OPEN of `ino` and counts it (call before replying). Passthrough when the
  // inode is open in passthrough already, or is not open and `local`; then `backing`
  // gives the inode's id the first time (an error or an out-of-range inode: cached).
  Opened Open(uint64_t ino, bool local, const std::function<absl::StatusOr<int32_t>()>& backing);
  // Counts the RELEASE of a handle Open gave (call after replying).
  void Release(uint64_t ino, uint64_t handle);

  // The inode's open files (> 0 cached, < 0 passthrough) and id, for tests and status.
  int32_t opens(uint64_t ino) const;
  int32_t backing_id(uint64_t ino) const;

 private:
  PassthroughTable(int fd, uint64_t inodes, uint64_t* words, size_t bytes)
      : fd_(fd), inodes_(inodes), words_(words), bytes_(bytes) {}
  absl::Mutex& MutexOf(uint64_t ino) const { return mu_[ino % mu_.size()]; }
  uint64_t Load(uint64_t ino) const;
  void Store(uint64_t ino, int32_t opens, int32_t id);

  const int fd_;
  const uint64_t inodes_;
  uint64_t* const words_;  // the mapping; inode i at words_[1 + i]
  const size_t bytes_;
  mutable std::array<absl::Mutex, 64> mu_;
};

}  // namespace clip

#endif  // CLIP_FS_PASSTHROUGH_H_
