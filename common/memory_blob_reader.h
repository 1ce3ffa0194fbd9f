// MemoryBlobReader: a BlobReader over bytes held in memory; the fake for tests and
// the holder of small blobs (manifests, indexes) already fetched.
//
//   MemoryBlobReader blob(std::string("hello"));
//
// Thread safety: safe for concurrent use (the bytes are immutable).
#ifndef CLIP_COMMON_MEMORY_BLOB_READER_H_
#define CLIP_COMMON_MEMORY_BLOB_READER_H_

#include <cstring>
#include <string>

#include "common/blob_reader.h"

namespace clip {

class MemoryBlobReader final : public BlobReader {
 public:
  explicit MemoryBlobReader(std::string bytes) : bytes_(std::move(bytes)) {}

  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> dst) const override {
    if (offset >= bytes_.size() || dst.empty()) return 0;
    size_t n = std::min<size_t>(dst.size(), bytes_.size() - offset);
    std::memcpy(dst.data(), bytes_.data() + offset, n);
    return n;
  }
  absl::StatusOr<uint64_t> Size() const override { return bytes_.size(); }

  const std::string& bytes() const { return bytes_; }

 private:
  const std::string bytes_;
};

}  // namespace clip

#endif  // CLIP_COMMON_MEMORY_BLOB_READER_H_
