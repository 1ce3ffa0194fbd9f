#include "common/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

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

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".", counter.fetch_add(1));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  size_t done = 0;
  absl::Status status;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = ErrnoToStatus(n < 0 ? errno : ENOSPC, absl::StrCat("write ", tmp));
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (status.ok() && fsync(fd) != 0) status = ErrnoToStatus(errno, absl::StrCat("sync ", tmp));
  if (close(fd) != 0 && status.ok()) status = ErrnoToStatus(errno, absl::StrCat("close ", tmp));
  if (status.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoToStatus(errno, absl::StrCat("rename to ", path));
  }
  if (!status.ok()) unlink(tmp.c_str());
  return status;
}

}  // namespace clip
