#include "fs/passthrough.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "fs/fuse_protocol.h"

namespace clip {
namespace {

using fuse_protocol::kInHeaderSize;
using fuse_protocol::kInitExt;
using fuse_protocol::kInitFlagsAt;
using fuse_protocol::kInitInFlags2At;
using fuse_protocol::kInitOutFlags2At;
using fuse_protocol::kInitOutStackDepthAt;
using fuse_protocol::kOpenOutSize;
using fuse_protocol::kOpenPassthrough;
using fuse_protocol::kPassthrough;

// FUSE_DEV_IOC_BACKING_OPEN: _IOW(229, 1, struct fuse_backing_map {s32 fd; u32 flags;
// u64 padding}).
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);
constexpr char kMagic[8] = {'c', 'l', 'i', 'p', 'p', 't', '0', '1'};
constexpr size_t kHeaderWords = 2;

}  // namespace

bool InitOffersPassthrough(absl::string_view init) {
  if (init.size() < kInHeaderSize + kInitInFlags2At + 4) return false;
  return (fuse_protocol::U32At(init.data(), kInHeaderSize + kInitFlagsAt) & kInitExt) &&
         (fuse_protocol::U32At(init.data(), kInHeaderSize + kInitInFlags2At) & kPassthrough);
}

bool EnablePassthroughInReply(iovec* iov, int count) {
  if (count < 2 || iov[1].iov_len < kInitOutStackDepthAt + 4) return false;
  void* out = iov[1].iov_base;
  fuse_protocol::SetU32At(out, kInitFlagsAt, fuse_protocol::U32At(out, kInitFlagsAt) | kInitExt);
  fuse_protocol::SetU32At(out, kInitOutFlags2At,
                          fuse_protocol::U32At(out, kInitOutFlags2At) | kPassthrough);
  fuse_protocol::SetU32At(out, kInitOutStackDepthAt, 1);
  return true;
}

bool SetBackingIdInOpenReply(iovec* iov, int count, int32_t backing_id) {
  if (count != 2 || iov[1].iov_len != kOpenOutSize) return false;
  void* out = iov[1].iov_base;
  fuse_protocol::SetU32At(out, 8, fuse_protocol::U32At(out, 8) | kOpenPassthrough);
  fuse_protocol::SetU32At(out, 12, static_cast<uint32_t>(backing_id));
  return true;
}

absl::StatusOr<int32_t> OpenBacking(int fuse_fd, int fd) {
  BackingMap map = {fd, 0, 0};
  int id = ioctl(fuse_fd, kBackingOpen, &map);
  if (id < 0) return ErrnoToStatus(errno, "FUSE_DEV_IOC_BACKING_OPEN");
  if (id == 0) return absl::InternalError("FUSE_DEV_IOC_BACKING_OPEN gave id 0");
  return static_cast<int32_t>(id);
}

absl::StatusOr<std::unique_ptr<PassthroughTable>> PassthroughTable::Create(uint64_t inodes) {
  int fd = memfd_create("clip-passthrough", MFD_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "memfd_create");
  const size_t bytes = (kHeaderWords + inodes) * sizeof(uint64_t);
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    absl::Status st = ErrnoToStatus(errno, "ftruncate of the passthrough table");
    close(fd);
    return st;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    absl::Status st = ErrnoToStatus(errno, "mmap of the passthrough table");
    close(fd);
    return st;
  }
  auto* words = static_cast<uint64_t*>(p);
  std::memcpy(&words[0], kMagic, sizeof(kMagic));
  words[1] = inodes;
  return std::unique_ptr<PassthroughTable>(new PassthroughTable(fd, inodes, words, bytes));
}

absl::StatusOr<std::unique_ptr<PassthroughTable>> PassthroughTable::Attach(int fd) {
  auto fail = [fd](absl::string_view what) {
    close(fd);
    return absl::DataLossError(absl::StrCat("held passthrough table: ", what));
  };
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return fail("not a memfd");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderWords * sizeof(uint64_t) || size % sizeof(uint64_t) != 0) {
    return fail(absl::StrCat("size ", size));
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail(absl::StrCat("mmap: ", strerror(errno)));
  auto* words = static_cast<uint64_t*>(p);
  const uint64_t inodes = words[1];
  if (std::memcmp(&words[0], kMagic, sizeof(kMagic)) != 0 ||
      inodes != size / sizeof(uint64_t) - kHeaderWords) {
    munmap(p, size);
    return fail("unknown layout");
  }
  return std::unique_ptr<PassthroughTable>(new PassthroughTable(fd, inodes, words, size));
}

PassthroughTable::~PassthroughTable() {
  munmap(words_, bytes_);
  close(fd_);
}

uint64_t PassthroughTable::Load(uint64_t ino) const {
  return __atomic_load_n(&words_[1 + ino], __ATOMIC_ACQUIRE);
}

void PassthroughTable::Store(uint64_t ino, int32_t opens, int32_t id) {
  const uint64_t w = (uint64_t{static_cast<uint32_t>(id)} << 32) | static_cast<uint32_t>(opens);
  __atomic_store_n(&words_[1 + ino], w, __ATOMIC_RELEASE);
}

int32_t PassthroughTable::opens(uint64_t ino) const {
  if (ino == 0 || ino > inodes_) return 0;
  return static_cast<int32_t>(static_cast<uint32_t>(Load(ino)));
}

int32_t PassthroughTable::backing_id(uint64_t ino) const {
  if (ino == 0 || ino > inodes_) return 0;
  return static_cast<int32_t>(static_cast<uint32_t>(Load(ino) >> 32));
}

PassthroughTable::Opened PassthroughTable::Open(
    uint64_t ino, bool local, const std::function<absl::StatusOr<int32_t>()>& backing) {
  if (ino == 0 || ino > inodes_) return {};
  absl::MutexLock lock(&MutexOf(ino));
  int32_t opens = this->opens(ino);
  int32_t id = backing_id(ino);
  if (opens < 0 || (opens == 0 && local)) {
    if (id == 0) {
      absl::StatusOr<int32_t> got = backing();
      if (got.ok()) id = *got;
    }
    if (id != 0) {
      Store(ino, opens - 1, id);
      return {kPassthroughHandle, id};
    }
    // No id: only possible with no open file (opens < 0 always has one), so cached is
    // allowed.
  }
  Store(ino, opens + 1, id);
  return {kCachedHandle, 0};
}

void PassthroughTable::Release(uint64_t ino, uint64_t handle) {
  if (ino == 0 || ino > inodes_) return;
  absl::MutexLock lock(&MutexOf(ino));
  int32_t opens = this->opens(ino);
  if (handle == kCachedHandle && opens > 0) --opens;
  if (handle == kPassthroughHandle && opens < 0) ++opens;
  Store(ino, opens, backing_id(ino));
}

}  // namespace clip
