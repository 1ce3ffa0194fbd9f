// Whole-file helpers: read a file into memory, and write one atomically (temporary name,
// fsync, rename), so a reader never sees half a file, also after a crash. AtomicFile is
// the machinery under WriteFileAtomically, for writers that need more: the disk cache
// writes its spans with direct I/O, without fsync, from a temporary directory of its own.
//
//   CLIP_RETURN_IF_ERROR(WriteFileAtomically("/var/lib/x/index", bytes));
//   CLIP_ASSIGN_OR_RETURN(std::string back, ReadWholeFile("/var/lib/x/index"));
//
//   CLIP_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path, {.tmp_dir = root + "/tmp"}));
//   CLIP_RETURN_IF_ERROR(file->Write(iov, 2));
//   CLIP_RETURN_IF_ERROR(file->Commit());  // not committed: the destructor removes it
//
// Thread safety: safe for concurrent use (temporary names are unique per process+call);
// one AtomicFile is used by one thread at a time.
#ifndef CLIP_COMMON_FILE_IO_H_
#define CLIP_COMMON_FILE_IO_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace clip {

// A file written under a temporary name and renamed onto its path by Commit.
class AtomicFile {
 public:
  struct Options {
    std::string tmp_dir;  // the temporary name's directory (same filesystem); empty: beside path
    bool sync = true;     // fsync before the rename
    bool direct = false;  // O_DIRECT where the filesystem allows it (see direct())
    mode_t mode = 0644;
  };
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path,
                                                            const Options& options);
  ~AtomicFile();  // removes the temporary file unless committed

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Whether direct I/O is on: then buffers, offsets and lengths must be block-aligned.
  bool direct() const { return direct_; }
  // Writes all of `iov` (retrying short writes and EINTR).
  absl::Status Write(const struct iovec* iov, int count);
  absl::Status Truncate(uint64_t size);
  // (fsync,) close and rename onto the path; afterwards the object only owns nothing.
  absl::Status Commit();

 private:
  AtomicFile(std::string path, std::string tmp, int fd, bool direct, bool sync)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd), direct_(direct), sync_(sync) {}

  const std::string path_;
  const std::string tmp_;
  int fd_;  // -1 once closed
  const bool direct_;
  const bool sync_;
  bool committed_ = false;
};

// kNotFound when `path` does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace clip

#endif  // CLIP_COMMON_FILE_IO_H_
