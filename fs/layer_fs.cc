#include "fs/layer_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace clip {
namespace {

using index::v1::Entry;

uint32_t TypeBits(const Entry& e) {
  switch (e.type()) {
    case index::v1::DIRECTORY:
      return S_IFDIR;
    case index::v1::SYMLINK:
      return S_IFLNK;
    case index::v1::CHAR_DEVICE:
    case index::v1::WHITEOUT:
      return S_IFCHR;
    case index::v1::BLOCK_DEVICE:
      return S_IFBLK;
    case index::v1::FIFO:
      return S_IFIFO;
    default:
      return S_IFREG;
  }
}

}  // namespace

LayerFs::LayerFs(std::shared_ptr<const index::v1::LayerIndex> index,
                 std::shared_ptr<const SpanSource> spans)
    : index_(std::move(index)), tree_(*index_), reader_(index_, std::move(spans)) {
  const auto& entries = index_->entries();
  nlink_.assign(static_cast<size_t>(entries.size()), 1);
  for (int i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.type() == index::v1::DIRECTORY) nlink_[static_cast<size_t>(i)] = 2;
    if (e.opaque() || e.xattrs_size() > 0) has_xattrs_ = true;
  }
  for (int i = 1; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.type() == index::v1::DIRECTORY) ++nlink_[e.parent()];
    if (e.type() == index::v1::HARDLINK) ++nlink_[e.link_entry()];
    if (e.type() == index::v1::REGULAR) {
      ++stats_.files;
      stats_.bytes += e.size();
    }
  }
  label_ = absl::StrCat("layer ", index_->diff_id().substr(0, 19));
}

int64_t LayerFs::EntryOf(uint64_t ino) const {
  if (ino == 0 || ino > static_cast<uint64_t>(index_->entries_size())) return -1;
  auto id = static_cast<int>(ino - 1);
  const Entry& e = index_->entries(id);
  if (e.type() == index::v1::HARDLINK) return e.link_entry();
  return id;
}

Attr LayerFs::MakeAttr(uint32_t id, uint64_t ino) const {
  const Entry& e = index_->entries(static_cast<int>(id));
  Attr a;
  a.ino = ino;
  a.mode = TypeBits(e) | (e.type() == index::v1::WHITEOUT ? 0 : e.mode());
  a.nlink = nlink_[id];
  a.uid = e.uid();
  a.gid = e.gid();
  a.mtime_sec = e.mtime_sec();
  a.mtime_nsec = e.mtime_nsec();
  switch (e.type()) {
    case index::v1::REGULAR:
      a.size = e.size();
      break;
    case index::v1::SYMLINK:
      a.size = e.link_target().size();
      break;
    case index::v1::DIRECTORY:
      a.size = 4096;
      break;
    case index::v1::CHAR_DEVICE:
    case index::v1::BLOCK_DEVICE:
      a.rdev = makedev(e.dev_major(), e.dev_minor());
      break;
    default:
      break;  // whiteouts are 0/0
  }
  a.blocks = (a.size + 511) / 512;
  return a;
}

absl::StatusOr<Attr> LayerFs::GetAttr(uint64_t ino) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  // All names of a file answer with the inode of the entry holding the data.
  return MakeAttr(static_cast<uint32_t>(id), static_cast<uint64_t>(id) + 1);
}

absl::StatusOr<Attr> LayerFs::Lookup(uint64_t parent, absl::string_view name) const {
  int64_t dir = EntryOf(parent);
  if (dir < 0) return absl::NotFoundError(absl::StrCat("no inode ", parent));
  if (index_->entries(static_cast<int>(dir)).type() != index::v1::DIRECTORY) {
    return WithErrno(absl::FailedPreconditionError("not a directory"), ENOTDIR);
  }
  std::optional<uint32_t> child = tree_.Lookup(static_cast<uint32_t>(dir), name);
  if (!child) return absl::NotFoundError(std::string(name));
  return GetAttr(static_cast<uint64_t>(*child) + 1);
}

absl::StatusOr<std::vector<DirEntry>> LayerFs::ReadDir(uint64_t ino) const {
  int64_t dir = EntryOf(ino);
  if (dir < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  if (index_->entries(static_cast<int>(dir)).type() != index::v1::DIRECTORY) {
    return WithErrno(absl::FailedPreconditionError("not a directory"), ENOTDIR);
  }
  std::vector<DirEntry> out;
  for (uint32_t child : tree_.Children(static_cast<uint32_t>(dir))) {
    CLIP_ASSIGN_OR_RETURN(Attr a, GetAttr(static_cast<uint64_t>(child) + 1));
    out.push_back({index_->entries(static_cast<int>(child)).name(), a});
  }
  return out;
}

absl::StatusOr<std::string> LayerFs::ReadLink(uint64_t ino) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  const Entry& e = index_->entries(static_cast<int>(id));
  if (e.type() != index::v1::SYMLINK) return absl::InvalidArgumentError("not a symlink");
  return e.link_target();
}

absl::Status LayerFs::Open(uint64_t ino) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  auto t = index_->entries(static_cast<int>(id)).type();
  if (t == index::v1::DIRECTORY) {
    return WithErrno(absl::FailedPreconditionError("is a directory"), EISDIR);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> LayerFs::Read(uint64_t ino, uint64_t offset, absl::Span<char> dst) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  const Entry& e = index_->entries(static_cast<int>(id));
  if (e.type() != index::v1::REGULAR) return absl::FailedPreconditionError("not a regular file");
  if (std::shared_ptr<const TreeFd> tree = std::atomic_load(&tree_fd_)) {
    return ReadTree(tree->fd, static_cast<uint32_t>(id), offset, dst);
  }
  return reader_.ReadFile(static_cast<uint32_t>(id), offset, dst);
}

LayerFs::TreeFd::~TreeFd() {
  if (fd >= 0) close(fd);
}

absl::Status LayerFs::UseTree(const std::string& tree) {
  auto t = std::make_shared<TreeFd>();
  t->fd = open(tree.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (t->fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", tree));
  std::atomic_store(&tree_fd_, std::shared_ptr<const TreeFd>(std::move(t)));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const LayerFs::TreeFd>> LayerFs::OpenTreeFile(int tree_fd,
                                                                             uint32_t entry) const {
  {
    absl::MutexLock lock(&open_mu_);
    if (auto it = open_.find(entry); it != open_.end()) return it->second;
  }
  const std::string path = tree_.Path(entry);
  auto f = std::make_shared<TreeFd>();
  f->fd = openat(tree_fd, path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (f->fd < 0)
    return ErrnoToStatus(errno, absl::StrCat("open ", path, " in the tree of ", label_));
  absl::MutexLock lock(&open_mu_);
  if (open_.size() >= kMaxOpenTreeFiles) open_.clear();  // closed once their readers are done
  return open_.emplace(entry, std::move(f)).first->second;
}

absl::StatusOr<int> LayerFs::OpenInTree(uint64_t ino) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  if (index_->entries(static_cast<int>(id)).type() != index::v1::REGULAR) {
    return absl::FailedPreconditionError("not a regular file");
  }
  std::shared_ptr<const TreeFd> tree = std::atomic_load(&tree_fd_);
  if (tree == nullptr) return absl::FailedPreconditionError(absl::StrCat(label_, " has no tree"));
  const std::string path = tree_.Path(static_cast<uint32_t>(id));
  int fd = openat(tree->fd, path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path, " in the tree of ", label_));
  return fd;
}

absl::StatusOr<size_t> LayerFs::ReadTree(int tree_fd, uint32_t entry, uint64_t offset,
                                         absl::Span<char> dst) const {
  CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const TreeFd> file, OpenTreeFile(tree_fd, entry));
  const int fd = file->fd;
  size_t done = 0;
  while (done < dst.size()) {
    ssize_t n = pread(fd, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoToStatus(errno,
                           absl::StrCat("read ", tree_.Path(entry), " in the tree of ", label_));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

absl::StatusOr<std::vector<SpanSlice>> LayerFs::ReadSlices(uint64_t ino, uint64_t offset,
                                                           size_t size) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  const Entry& e = index_->entries(static_cast<int>(id));
  if (e.type() != index::v1::REGULAR) return absl::FailedPreconditionError("not a regular file");
  if (std::shared_ptr<const TreeFd> tree = std::atomic_load(&tree_fd_)) {
    const uint64_t file_size = e.size();
    if (offset >= file_size) return std::vector<SpanSlice>{};
    auto buffer = std::make_shared<std::string>(
        static_cast<size_t>(std::min<uint64_t>(size, file_size - offset)), '\0');
    CLIP_ASSIGN_OR_RETURN(size_t n, ReadTree(tree->fd, static_cast<uint32_t>(id), offset,
                                             absl::MakeSpan(buffer->data(), buffer->size())));
    buffer->resize(n);
    return std::vector<SpanSlice>{{buffer, buffer->data(), buffer->size()}};
  }
  return reader_.FileSlices(static_cast<uint32_t>(id), offset, size);
}

absl::StatusOr<std::string> LayerFs::GetXattr(uint64_t ino, absl::string_view name) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  const Entry& e = index_->entries(static_cast<int>(id));
  if (e.opaque() && name == kOpaqueXattr) return std::string("y");
  for (const auto& x : e.xattrs()) {
    if (x.key() == name) return x.value();
  }
  return WithErrno(absl::NotFoundError("no such attribute"), ENODATA);
}

absl::StatusOr<std::vector<std::string>> LayerFs::ListXattr(uint64_t ino) const {
  int64_t id = EntryOf(ino);
  if (id < 0) return absl::NotFoundError(absl::StrCat("no inode ", ino));
  const Entry& e = index_->entries(static_cast<int>(id));
  std::vector<std::string> out;
  for (const auto& x : e.xattrs()) out.push_back(x.key());
  if (e.opaque()) out.push_back(kOpaqueXattr);
  return out;
}

std::string LayerFs::PathOf(uint64_t ino) const {
  if (ino == 0 || ino > static_cast<uint64_t>(index_->entries_size())) return "?";
  return "/" + tree_.Path(static_cast<uint32_t>(ino - 1));
}

}  // namespace clip
