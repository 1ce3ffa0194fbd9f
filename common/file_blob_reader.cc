#include "common/file_blob_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace clip {

absl::StatusOr<std::unique_ptr<FileBlobReader>> FileBlobReader::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status s = ErrnoToStatus(errno, absl::StrCat("stat ", path));
    close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  return std::unique_ptr<FileBlobReader>(
      new FileBlobReader(fd, static_cast<uint64_t>(st.st_size), path));
}

FileBlobReader::~FileBlobReader() { close(fd_); }

absl::StatusOr<size_t> FileBlobReader::ReadAt(uint64_t offset, absl::Span<char> dst) const {
  if (offset >= size_) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(dst.size(), size_ - offset));
  size_t done = 0;
  while (done < want) {
    ssize_t n = pread(fd_, dst.data() + done, want - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("read ", path_, " at ", offset + done));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(path_, " shrank below its size ", size_,
                                              " while open (ends at ", offset + done, ")"));
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace clip
