#include "cache/disk_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/coding.h"
#include "common/errno_status.h"
#include "common/file_io.h"
#include "common/status_macros.h"

namespace clip {
namespace {

constexpr absl::Duration kStaleTempAge = absl::Hours(1);
constexpr char kTrailerMagic[8] = {'C', 'L', 'I', 'P', 'S', 'P', 'A', 'N'};
constexpr uint32_t kTrailerVersion = 1;

uint32_t Crc32c(const char* data, size_t size) {
  uint32_t crc = 0;
  // ISA-L takes an int length: feed large buffers in pieces.
  while (size > 0) {
    size_t n = std::min<size_t>(size, 1 << 30);
    crc = crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<char*>(data)),
                      static_cast<int>(n), crc);
    data += n;
    size -= n;
  }
  return crc;
}

std::string Trailer(const std::string& data) {
  std::string t(kTrailerMagic, sizeof(kTrailerMagic));
  uint32_t crc = Crc32c(data.data(), data.size());
  PutFixed32(&t, crc);
  PutFixed32(&t, kTrailerVersion);
  return t;
}

// O_DIRECT needs block-aligned buffers, offsets and lengths; 4 KiB covers every
// logical block size in use.
constexpr size_t kDirectAlign = 4096;

// A per-thread block-aligned buffer of at least `size` bytes, reused across calls.
char* AlignedScratch(size_t size) {
  struct Scratch {
    char* data = nullptr;
    size_t size = 0;
    ~Scratch() { free(data); }
  };
  thread_local Scratch s;
  if (s.size < size) {
    free(s.data);
    s.data = nullptr;
    s.size = 0;
    void* p = nullptr;
    if (posix_memalign(&p, kDirectAlign, size) != 0) abort();  // out of memory
    s.data = static_cast<char*>(p);
    s.size = size;
  }
  return s.data;
}

// Writes the iovecs whole (short writes and EINTR resumed); `what` names the file.
absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  closedir(d);
  return out;
}

// Temp files are "<hex>.<pid>.<n>": removable once their writer is gone or old.
bool StaleTemp(const std::string& path, const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '.');
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  if (absl::Now() - absl::FromTimeT(st.st_mtime) > kStaleTempAge) return true;
  int pid = 0;
  if (parts.size() == 3 && absl::SimpleAtoi(parts[1], &pid) && pid > 0) {
    return kill(pid, 0) != 0 && errno == ESRCH;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DiskCache>> DiskCache::Open(const Options& options) {
  if (options.root.empty()) return absl::InvalidArgumentError("disk cache root is empty");
  std::unique_ptr<DiskCache> c(new DiskCache(options));
  CLIP_RETURN_IF_ERROR(MakeDir(options.root));
  CLIP_RETURN_IF_ERROR(MakeDir(options.root + "/tmp"));
  for (const std::string& name : List(options.root + "/tmp")) {
    std::string path = absl::StrCat(options.root, "/tmp/", name);
    if (StaleTemp(path, name)) unlink(path.c_str());
  }
  CLIP_RETURN_IF_ERROR(c->Rescan());
  c->EvictToBudget();
  return c;
}

std::string DiskCache::PathFor(const Digest& key) const { return PathIn(options_.root, key); }

std::string DiskCache::PathIn(const std::string& root, const Digest& key) {
  std::string hex = key.Hex();
  return absl::StrCat(root, "/", hex.substr(0, 2), "/", hex.substr(2, 2), "/", hex);
}

absl::Status DiskCache::Rescan() {
  struct Found {
    Digest key;
    uint64_t size;
    struct timespec mtime;
  };
  std::vector<Found> found;
  for (const std::string& a : List(options_.root)) {
    if (a.size() != 2) continue;  // "tmp" and strangers
    for (const std::string& b : List(absl::StrCat(options_.root, "/", a))) {
      std::string dir = absl::StrCat(options_.root, "/", a, "/", b);
      for (const std::string& name : List(dir)) {
        absl::StatusOr<Digest> key = Digest::ParseHex(name);
        struct stat st;
        std::string path = absl::StrCat(dir, "/", name);
        if (!key.ok() || stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        found.push_back({*key, static_cast<uint64_t>(st.st_size), st.st_mtim});
      }
    }
  }
  // Oldest first, so pushing each to the front leaves the newest at the front.
  std::sort(found.begin(), found.end(), [](const Found& x, const Found& y) {
    return x.mtime.tv_sec != y.mtime.tv_sec ? x.mtime.tv_sec < y.mtime.tv_sec
                                            : x.mtime.tv_nsec < y.mtime.tv_nsec;
  });
  absl::MutexLock lock(&mu_);
  lru_.clear();
  entries_.clear();
  bytes_ = 0;
  for (const Found& f : found) {
    lru_.push_front(f.key);
    entries_[f.key] = {lru_.begin(), f.size};
    bytes_ += f.size;
  }
  return absl::OkStatus();
}

void DiskCache::Record(const Digest& key, uint64_t size) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.first);
    return;
  }
  lru_.push_front(key);
  entries_[key] = {lru_.begin(), size};
  bytes_ += size;
}

void DiskCache::Forget(const Digest& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  bytes_ -= it->second.second;
  lru_.erase(it->second.first);
  entries_.erase(it);
}

void DiskCache::EvictToBudget() {
  for (;;) {
    Digest victim;
    {
      absl::MutexLock lock(&mu_);
      if (bytes_ <= options_.max_bytes || lru_.empty()) return;
      victim = lru_.back();
      auto it = entries_.find(victim);
      bytes_ -= it->second.second;
      entries_.erase(it);
      lru_.pop_back();
    }
    unlink(PathFor(victim).c_str());  // ENOENT: another process evicted it first.
    counters_.evictions.Increment();
  }
}

absl::Status DiskCache::Remove(const Digest& key) {
  const std::string path = PathFor(key);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, absl::StrCat("remove ", path));
  }
  Forget(key);
  return absl::OkStatus();
}

bool DiskCache::Contains(const Digest& key) const {
  return access(PathFor(key).c_str(), F_OK) == 0;
}

uint64_t DiskCache::size_bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

absl::StatusOr<std::optional<SpanBytes>> DiskCache::Get(const Digest& key) {
  std::string path = PathFor(key);
  // Direct I/O where the filesystem has it (see Put): a hit does not leave a second
  // copy of the span in the page cache beside the reader's FUSE pages.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  bool direct = fd >= 0;
  if (!direct && errno == EINVAL) fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      Forget(key);
      counters_.Miss();
      return std::nullopt;
    }
    counters_.errors.Increment();
    return ErrnoToStatus(errno, absl::StrCat("open ", path));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status s = ErrnoToStatus(errno, absl::StrCat("stat ", path));
    close(fd);
    counters_.errors.Increment();
    return s;
  }
  const size_t file_size = static_cast<size_t>(st.st_size);
  // The whole file, trailer included, in one buffer: the scratch block (direct) or the
  // result string itself (buffered, asked for at once rather than in readahead windows).
  std::shared_ptr<std::string> bytes;
  char* dst;
  size_t want = file_size;
  if (direct) {
    want = (file_size + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
    dst = AlignedScratch(std::max(want, kDirectAlign));
  } else {
    posix_fadvise(fd, 0, static_cast<off_t>(file_size), POSIX_FADV_WILLNEED);
    bytes = std::make_shared<std::string>(file_size, '\0');
    dst = bytes->data();
  }
  size_t done = 0;
  while (done < want) {
    ssize_t n = pread(fd, dst + done, want - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const size_t data_size = file_size >= kTrailerSize ? file_size - kTrailerSize : 0;
  const char* trailer = dst + data_size;
  bool intact = file_size >= kTrailerSize && done >= file_size &&
                std::memcmp(trailer, kTrailerMagic, sizeof(kTrailerMagic)) == 0 &&
                DecodeFixed32(trailer + 12) == kTrailerVersion &&
                DecodeFixed32(trailer + 8) == Crc32c(dst, data_size);
  if (intact) {
    if (direct) {
      bytes = std::make_shared<std::string>(dst, data_size);
    } else {
      bytes->resize(data_size);
    }
    intact = !options_.verify_digest || Digest::Of(*bytes) == key;
  }
  if (intact) futimens(fd, nullptr);  // Recency for LRU, kept across restarts.
  close(fd);
  if (!intact) {
    // Corrupt or truncated: never served; dropped so the next fill replaces it.
    unlink(path.c_str());
    Forget(key);
    counters_.corrupt.Increment();
    counters_.Miss();
    return std::nullopt;
  }
  Record(key, file_size);
  counters_.Hit(bytes->size());
  return SpanBytes(std::move(bytes));
}

absl::Status DiskCache::Put(const Digest& key, const SpanBytes& bytes) {
  std::string path = PathFor(key);
  if (access(path.c_str(), F_OK) == 0) {
    Record(key, bytes->size() + kTrailerSize);
    return absl::OkStatus();
  }
  // Direct I/O where the filesystem has it: the span goes from an aligned copy to the
  // disk without a second copy in the page cache (the reader's FUSE pages are the one
  // cached copy), which also spares a page-cache fill per span. The file is written
  // padded to whole blocks, then cut to its size. Buffered writes otherwise (tmpfs).
  // No fsync: see the header (the trailer's checksum guards a torn file).
  std::string trailer = Trailer(*bytes);
  const size_t total = bytes->size() + trailer.size();
  const size_t padded = (total + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  absl::Status status = [&]() -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file,
                          AtomicFile::Create(path, {.tmp_dir = absl::StrCat(options_.root, "/tmp"),
                                                    .sync = false,
                                                    .direct = true,
                                                    .mode = 0600}));
    if (file->direct()) {
      char* block = AlignedScratch(padded);
      std::memcpy(block, bytes->data(), bytes->size());
      std::memcpy(block + bytes->size(), trailer.data(), trailer.size());
      std::memset(block + total, 0, padded - total);
      struct iovec whole = {block, padded};
      CLIP_RETURN_IF_ERROR(file->Write(&whole, 1));
      CLIP_RETURN_IF_ERROR(file->Truncate(total));
    } else {
      struct iovec iov[2] = {{const_cast<char*>(bytes->data()), bytes->size()},
                             {trailer.data(), trailer.size()}};
      CLIP_RETURN_IF_ERROR(file->Write(iov, 2));
    }
    const std::string hex = key.Hex();
    const std::string shard = absl::StrCat(options_.root, "/", hex.substr(0, 2));
    CLIP_RETURN_IF_ERROR(MakeDir(shard));
    CLIP_RETURN_IF_ERROR(MakeDir(absl::StrCat(shard, "/", hex.substr(2, 2))));
    return file->Commit();
  }();
  if (!status.ok()) {
    counters_.errors.Increment();
    return status;
  }
  counters_.bytes_written.Increment(static_cast<double>(bytes->size()));
  Record(key, total);
  EvictToBudget();
  return absl::OkStatus();
}

}  // namespace clip
