#include "fs/sealed_memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace clip {

absl::StatusOr<int> SealedMemfd(const char* name, const std::string& bytes) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return ErrnoToStatus(errno, "memfd_create");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      close(fd);
      return ErrnoToStatus(e, "write to a memfd");
    }
    done += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    const int e = errno;
    close(fd);
    return ErrnoToStatus(e, "sealing a memfd");
  }
  return fd;
}

absl::StatusOr<std::string> ReadSealedMemfd(int fd, size_t max_bytes) {
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_WRITE) == 0 || (seals & F_SEAL_SHRINK) == 0) {
    return absl::FailedPreconditionError("not a memfd sealed against writes");
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, "fstat of a memfd");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a sealed memfd of ", st.st_size, " bytes (at most ", max_bytes, ")"));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, "read of a memfd");
    if (n == 0) break;  // cannot shrink (sealed): not reached
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

}  // namespace clip
