// LayerFs: the read-only filesystem of one image layer, served from its clip index and
// a span source, as a plain class the libfuse adapter (FuseServer, fuse_server.h) translates to.
// Tests drive it without a mount.
//
// Design. Inode numbers are entry ids + 1 (the root is inode 1), so they are stable
// across mounts and restarts and `forget` is bookkeeping; a hardlink answers with the
// inode of the entry it links to, so all names of a file share one inode and its link
// count. Directory link counts are 2 + subdirectories, as ext4 reports. File data is
// read through LayerReader (spans: memory/disk/remote cache, then the registry), so a
// read touches only the spans it covers. Overlay semantics for a lower layer: a
// whiteout is the character device 0/0 under the plain name, and an opaque directory
// carries the xattr `trusted.overlay.opaque` = "y" (the marker file itself is hidden).
// Everything is immutable after construction but the switch to a tree (UseTree, an
// atomic pointer) and the tree's open files (a small map under a mutex).
//
//   LayerFs fs(index, spans);
//   CLIP_ASSIGN_OR_RETURN(Attr a, fs.Lookup(kRootInode, "etc"));
//
// Errors (mapped to errno only by the adapter): kNotFound (ENOENT), kFailedPrecondition
// for the wrong kind of inode (ENOTDIR/EISDIR/EINVAL), kNotFound from GetXattr for a
// missing attribute (ENODATA), and the span source's errors for reads (EIO).
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_FS_LAYER_FS_H_
#define CLIP_FS_LAYER_FS_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "clip/index/v1/index.pb.h"
#include "index/entry_tree.h"
#include "index/layer_reader.h"

namespace clip {

inline constexpr uint64_t kRootInode = 1;
inline constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";

struct Attr {
  uint64_t ino = 0;
  uint32_t mode = 0;  // file type and permission bits, as st_mode
  uint32_t nlink = 1;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;  // makedev(major, minor)
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t blocks = 0;  // 512-byte blocks
  uint32_t blksize = 4096;
};

struct DirEntry {
  std::string name;
  Attr attr;
};

struct FsStats {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

class LayerFs {
 public:
  LayerFs(std::shared_ptr<const index::v1::LayerIndex> index,
          std::shared_ptr<const SpanSource> spans);

  absl::StatusOr<Attr> GetAttr(uint64_t ino) const;
  absl::StatusOr<Attr> Lookup(uint64_t parent, absl::string_view name) const;
  // The directory's entries (without "." and ".."), sorted by name.
  absl::StatusOr<std::vector<DirEntry>> ReadDir(uint64_t ino) const;
  absl::StatusOr<std::string> ReadLink(uint64_t ino) const;
  // Checks that `ino` can be opened for reading (a regular file).
  absl::Status Open(uint64_t ino) const;
  absl::StatusOr<size_t> Read(uint64_t ino, uint64_t offset, absl::Span<char> dst) const;
  // What Read would copy, as slices of the cached spans (no copy; see LayerReader).
  absl::StatusOr<std::vector<SpanSlice>> ReadSlices(uint64_t ino, uint64_t offset,
                                                    size_t size) const;
  absl::StatusOr<std::string> GetXattr(uint64_t ino, absl::string_view name) const;
  absl::StatusOr<std::vector<std::string>> ListXattr(uint64_t ino) const;
  FsStats Stats() const { return stats_; }
  // From now on, file data comes from `tree` - this layer written out as a directory tree
  // (lazy/layer_tree.h) - instead of the spans: a running container's reads keep working
  // once the spans leave the cache. kNotFound etc. when `tree` cannot be opened.
  absl::Status UseTree(const std::string& tree);
  bool uses_tree() const { return std::atomic_load(&tree_fd_) != nullptr; }
  // A new read-only fd of regular file `ino`'s file in the tree (the caller closes it):
  // FUSE passthrough's backing file. kFailedPrecondition before UseTree.
  absl::StatusOr<int> OpenInTree(uint64_t ino) const;
  // Inode numbers are 1..inodes().
  uint64_t inodes() const { return static_cast<uint64_t>(index_->entries_size()); }
  // False when no entry has an extended attribute (nor is opaque): every GetXattr is
  // then kNotFound, and the adapter may tell the kernel to stop asking.
  bool has_xattrs() const { return has_xattrs_; }
  // "layer <diff id>" for log lines.
  const std::string& label() const { return label_; }
  std::string PathOf(uint64_t ino) const;

 private:
  // The entry id an inode's attributes come from (hardlinks resolved); -1 if invalid.
  int64_t EntryOf(uint64_t ino) const;
  Attr MakeAttr(uint32_t entry_id, uint64_t ino) const;
  // A regular file's bytes from the tree (UseTree), into `dst`.
  absl::StatusOr<size_t> ReadTree(int tree_fd, uint32_t entry, uint64_t offset,
                                  absl::Span<char> dst) const;
  struct TreeFd {
    int fd = -1;
    ~TreeFd();
  };
  // The tree's file of `entry`, open (kept open: a reader's next read needs it again).
  absl::StatusOr<std::shared_ptr<const TreeFd>> OpenTreeFile(int tree_fd, uint32_t entry) const;

  std::shared_ptr<const index::v1::LayerIndex> index_;
  EntryTree tree_;
  LayerReader reader_;
  bool has_xattrs_ = false;
  std::vector<uint32_t> nlink_;  // per entry id (targets of hardlinks and directories)
  FsStats stats_;
  std::string label_;
  std::shared_ptr<const TreeFd> tree_fd_;  // set once by UseTree (atomic_load/store)
  static constexpr size_t kMaxOpenTreeFiles = 256;
  mutable absl::Mutex open_mu_;
  mutable std::map<uint32_t, std::shared_ptr<const TreeFd>> open_ ABSL_GUARDED_BY(open_mu_);
};

}  // namespace clip

#endif  // CLIP_FS_LAYER_FS_H_
