// FileBlobReader: a BlobReader over a local file (a downloaded layer, a cache file).
//
// The file is opened once, read with pread(2), and must not change while open: its
// size is taken at Open.
//
//   CLIP_ASSIGN_OR_RETURN(std::unique_ptr<FileBlobReader> blob,
//                         FileBlobReader::Open("/tmp/layer.tar.gz"));
//
// Thread safety: safe for concurrent use (pread has no shared file position).
#ifndef CLIP_COMMON_FILE_BLOB_READER_H_
#define CLIP_COMMON_FILE_BLOB_READER_H_

#include <memory>
#include <string>

#include "common/blob_reader.h"

namespace clip {

class FileBlobReader final : public BlobReader {
 public:
  // kNotFound if `path` does not exist, kInvalidArgument if it is not a regular file.
  static absl::StatusOr<std::unique_ptr<FileBlobReader>> Open(const std::string& path);
  ~FileBlobReader() override;

  FileBlobReader(const FileBlobReader&) = delete;
  FileBlobReader& operator=(const FileBlobReader&) = delete;

  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> dst) const override;
  absl::StatusOr<uint64_t> Size() const override { return size_; }

 private:
  FileBlobReader(int fd, uint64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}

  const int fd_;
  const uint64_t size_;
  const std::string path_;
};

}  // namespace clip

#endif  // CLIP_COMMON_FILE_BLOB_READER_H_
