#include "lazy/layer_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/remove_tree.h"
#include "common/status_macros.h"

namespace clip {

namespace {

constexpr size_t kCopyChunk = 1 << 20;

// A failed call as a status: a full disk is kResourceExhausted (the caller keeps the
// layer lazy), the rest keep their errno's code.
absl::Status Failed(int e, absl::string_view what, const std::string& path) {
  if (e == ENOSPC || e == EDQUOT) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " ", path, ": the disk is full (", strerror(e), ")"));
  }
  return ErrnoToStatus(e, absl::StrCat(what, " ", path));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class Writer {
 public:
  Writer(const LayerFs& fs, std::string tmp, const LayerTreeOptions& options)
      : fs_(fs), tmp_(std::move(tmp)), options_(options) {}

  // The tree's root is the temporary directory itself (open as `root_fd`).
  absl::Status Write(int root_fd) {
    root_fd_ = root_fd;
    CLIP_RETURN_IF_ERROR(Before(""));
    CLIP_ASSIGN_OR_RETURN(Attr root, fs_.GetAttr(kRootInode));
    CLIP_RETURN_IF_ERROR(WriteChildren(kRootInode, root_fd, ""));
    return Finish(root_fd, "", root);
  }

 private:
  absl::Status Before(const std::string& rel) {
    return options_.before_entry ? options_.before_entry(rel) : absl::OkStatus();
  }
  std::string Full(const std::string& rel) const {
    return rel.empty() ? tmp_ : absl::StrCat(tmp_, "/", rel);
  }

  // A directory's entries are all made before any subdirectory is filled, so they get
  // neighbouring inodes (a walk or an ls -l of the directory reads few inode-table
  // blocks); a depth-first order would put every subtree's inodes between them.
  absl::Status WriteChildren(uint64_t ino, int dir_fd, const std::string& rel) {
    CLIP_ASSIGN_OR_RETURN(std::vector<DirEntry> entries, fs_.ReadDir(ino));
    std::vector<const DirEntry*> subdirs;
    for (const DirEntry& e : entries) {
      const std::string child = rel.empty() ? e.name : absl::StrCat(rel, "/", e.name);
      CLIP_RETURN_IF_ERROR(Before(child));
      if (S_ISDIR(e.attr.mode)) {
        if (mkdirat(dir_fd, e.name.c_str(), 0700) != 0) return Failed(errno, "mkdir", Full(child));
        subdirs.push_back(&e);
        continue;
      }
      CLIP_RETURN_IF_ERROR(WriteEntry(e, dir_fd, child));
    }
    for (const DirEntry* e : subdirs) {
      const std::string child = rel.empty() ? e->name : absl::StrCat(rel, "/", e->name);
      Fd fd(openat(dir_fd, e->name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (fd.get() < 0) return Failed(errno, "open", Full(child));
      CLIP_RETURN_IF_ERROR(WriteChildren(e->attr.ino, fd.get(), child));
      CLIP_RETURN_IF_ERROR(Finish(fd.get(), child, e->attr));  // after its entries: its mtime
    }
    return absl::OkStatus();
  }

  // Everything but a directory (WriteChildren makes those).
  absl::Status WriteEntry(const DirEntry& e, int dir_fd, const std::string& rel) {
    const Attr& a = e.attr;
    const char* name = e.name.c_str();
    // Every name of a file after its first is a hardlink to the first.
    auto [it, first] = first_path_.emplace(a.ino, rel);
    if (!first) {
      if (linkat(root_fd_, it->second.c_str(), dir_fd, name, 0) != 0) {
        return Failed(errno, "link", Full(rel));
      }
      return absl::OkStatus();
    }
    if (S_ISREG(a.mode)) {
      Fd fd(openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (fd.get() < 0) return Failed(errno, "create", Full(rel));
      CLIP_RETURN_IF_ERROR(CopyData(a, fd.get(), rel));
      return Finish(fd.get(), rel, a);
    }
    if (S_ISLNK(a.mode)) {
      CLIP_ASSIGN_OR_RETURN(std::string target, fs_.ReadLink(a.ino));
      if (symlinkat(target.c_str(), dir_fd, name) != 0) return Failed(errno, "symlink", Full(rel));
    } else if (mknodat(dir_fd, name, a.mode & (S_IFMT | 07777), a.rdev) != 0) {
      return Failed(errno, "mknod", Full(rel));  // devices, fifos, sockets, whiteouts
    }
    return FinishAt(dir_fd, name, rel, a);
  }

  absl::Status CopyData(const Attr& a, int fd, const std::string& rel) {
    CLIP_RETURN_IF_ERROR(fs_.Open(a.ino));
    // A file of several chunks gets its blocks at once, in one run where the disk has
    // one: written chunk by chunk, writeback allocates it in pieces (2-3 extents for a
    // 35 MB file here, where containerd's unpack got 1). Not every filesystem can.
    if (a.size > kCopyChunk && fallocate(fd, 0, 0, static_cast<off_t>(a.size)) != 0 &&
        errno != EOPNOTSUPP) {
      return Failed(errno, "allocate", Full(rel));
    }
    buffer_.resize(kCopyChunk);
    uint64_t offset = 0;
    while (offset < a.size) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kCopyChunk, a.size - offset));
      CLIP_ASSIGN_OR_RETURN(size_t n,
                            fs_.Read(a.ino, offset, absl::MakeSpan(buffer_.data(), want)));
      if (n == 0) {
        return absl::DataLossError(absl::StrCat("the layer's ", rel, " ends at ", offset,
                                                " bytes, its entry says ", a.size));
      }
      for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, buffer_.data() + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Failed(errno, "write", Full(rel));
        done += static_cast<size_t>(w);
      }
      offset += n;
    }
    return absl::OkStatus();
  }

  // Owner, then mode (chown clears setuid/setgid), then xattrs (chown also clears
  // security.capability), then times, on an open file or directory.
  absl::Status Finish(int fd, const std::string& rel, const Attr& a) {
    const std::string path = Full(rel);
    if (fchown(fd, a.uid, a.gid) != 0) return Failed(errno, "chown", path);
    if (fchmod(fd, a.mode & 07777) != 0) return Failed(errno, "chmod", path);
    CLIP_RETURN_IF_ERROR(CopyXattrs(a.ino, path, [fd](const char* n, const std::string& v) {
      return fsetxattr(fd, n, v.data(), v.size(), 0);
    }));
    const timespec times[2] = {Mtime(a), Mtime(a)};
    if (futimens(fd, times) != 0) return Failed(errno, "utimens", path);
    return absl::OkStatus();
  }

  // The same for what cannot be opened for writing (symlinks, devices, fifos, sockets).
  absl::Status FinishAt(int dir_fd, const char* name, const std::string& rel, const Attr& a) {
    const std::string path = Full(rel);
    if (fchownat(dir_fd, name, a.uid, a.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return Failed(errno, "chown", path);
    }
    if (!S_ISLNK(a.mode) && fchmodat(dir_fd, name, a.mode & 07777, 0) != 0) {
      return Failed(errno, "chmod", path);
    }
    CLIP_RETURN_IF_ERROR(CopyXattrs(a.ino, path, [&path](const char* n, const std::string& v) {
      return lsetxattr(path.c_str(), n, v.data(), v.size(), 0);
    }));
    const timespec times[2] = {Mtime(a), Mtime(a)};
    if (utimensat(dir_fd, name, times, AT_SYMLINK_NOFOLLOW) != 0) {
      return Failed(errno, "utimens", path);
    }
    return absl::OkStatus();
  }

  template <typename Set>
  absl::Status CopyXattrs(uint64_t ino, const std::string& path, Set set) {
    if (!fs_.has_xattrs()) return absl::OkStatus();
    CLIP_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_.ListXattr(ino));
    for (const std::string& n : names) {
      CLIP_ASSIGN_OR_RETURN(std::string value, fs_.GetXattr(ino, n));
      if (set(n.c_str(), value) != 0) return Failed(errno, absl::StrCat("setxattr ", n), path);
    }
    return absl::OkStatus();
  }

  static timespec Mtime(const Attr& a) {
    return timespec{static_cast<time_t>(a.mtime_sec), static_cast<long>(a.mtime_nsec)};
  }

  const LayerFs& fs_;
  const std::string tmp_;
  const LayerTreeOptions& options_;
  int root_fd_ = -1;
  std::map<uint64_t, std::string> first_path_;  // inode -> its first name (hardlinks)
  std::vector<char> buffer_;
};

std::atomic<uint64_t> next_tmp{0};

}  // namespace

absl::Status WriteLayerTree(const LayerFs& fs, const std::string& dir,
                            const LayerTreeOptions& options) {
  struct stat st;
  if (lstat(dir.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat("layer tree ", dir, " exists"));
  }
  const std::string tmp = absl::StrCat(dir, ".tmp-", getpid(), "-", next_tmp++);
  if (mkdir(tmp.c_str(), 0700) != 0) return Failed(errno, "mkdir", tmp);
  absl::Status written = [&]() -> absl::Status {
    Fd root(open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (root.get() < 0) return Failed(errno, "open", tmp);
    CLIP_RETURN_IF_ERROR(Writer(fs, tmp, options).Write(root.get()));
    // On disk before it has its name: after a crash a tree is whole or not there.
    if (syncfs(root.get()) != 0) return Failed(errno, "syncfs", tmp);
    if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST)
        return absl::AlreadyExistsError(absl::StrCat("layer tree ", dir, " exists"));
      return Failed(errno, "rename onto", dir);
    }
    return absl::OkStatus();
  }();
  if (!written.ok()) {
    (void)RemoveTree(tmp);
    return written;
  }
  const size_t slash = dir.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : dir.substr(0, slash + 1);
  Fd p(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (p.get() >= 0) (void)fsync(p.get());  // the rename itself
  return absl::OkStatus();
}

absl::Status RemoveUnfinishedTrees(const std::string& parent) {
  DIR* d = opendir(parent.c_str());
  if (d == nullptr) {
    return errno == ENOENT ? absl::OkStatus() : Failed(errno, "opendir", parent);
  }
  std::vector<std::string> unfinished;
  while (dirent* e = readdir(d)) {
    if (absl::StrContains(e->d_name, ".tmp-")) unfinished.push_back(e->d_name);
  }
  closedir(d);
  absl::Status st;
  for (const std::string& name : unfinished) st.Update(RemoveTree(absl::StrCat(parent, "/", name)));
  return st;
}

}  // namespace clip
