#include "common/file_io.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/file_blob_reader.h"
#include "common/status_macros.h"

namespace clip {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  CLIP_ASSIGN_OR_RETURN(auto blob, FileBlobReader::Open(path));
  CLIP_ASSIGN_OR_RETURN(uint64_t size, blob->Size());
  std::string bytes(size, '\0');
  CLIP_RETURN_IF_ERROR(ReadExactly(*blob, 0, absl::MakeSpan(bytes)));
  return bytes;
}

absl::StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path,
                                                               const Options& options) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  if (options.tmp_dir.empty()) {
    tmp = absl::StrCat(path, ".tmp.", getpid(), ".", counter.fetch_add(1));
  } else {
    const size_t slash = path.rfind('/');
    tmp = absl::StrCat(options.tmp_dir, "/",
                       slash == std::string::npos ? path : path.substr(slash + 1), ".", getpid(),
                       ".", counter.fetch_add(1));
  }
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  int fd = -1;
  bool direct = false;
  if (options.direct) {
    fd = open(tmp.c_str(), flags | O_DIRECT, options.mode);
    direct = fd >= 0;
    if (fd < 0 && errno != EINVAL) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  }
  if (fd < 0) fd = open(tmp.c_str(), flags, options.mode);  // no direct I/O here (tmpfs)
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  return std::unique_ptr<AtomicFile>(
      new AtomicFile(path, std::move(tmp), fd, direct, options.sync));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(tmp_.c_str());
}

absl::Status AtomicFile::Write(const struct iovec* iov, int count) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  std::vector<struct iovec> rest;
  size_t done = 0;
  while (done < total) {
    // What is left of the iovecs.
    rest.clear();
    size_t skip = done;
    for (int i = 0; i < count; ++i) {
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      rest.push_back({static_cast<char*>(iov[i].iov_base) + skip, iov[i].iov_len - skip});
      skip = 0;
    }
    ssize_t n = writev(fd_, rest.data(), static_cast<int>(std::min<size_t>(rest.size(), IOV_MAX)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoToStatus(n < 0 ? errno : ENOSPC, absl::StrCat("write ", tmp_));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Truncate(uint64_t size) {
  if (ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("truncate ", tmp_));
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Commit() {
  if (sync_ && fsync(fd_) != 0) return ErrnoToStatus(errno, absl::StrCat("sync ", tmp_));
  const int fd = fd_;
  fd_ = -1;
  if (close(fd) != 0) return ErrnoToStatus(errno, absl::StrCat("close ", tmp_));
  if (rename(tmp_.c_str(), path_.c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("rename to ", path_));
  }
  committed_ = true;
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  CLIP_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path, {}));
  struct iovec whole = {const_cast<char*>(bytes.data()), bytes.size()};
  CLIP_RETURN_IF_ERROR(file->Write(&whole, 1));
  return file->Commit();
}

}  // namespace clip
