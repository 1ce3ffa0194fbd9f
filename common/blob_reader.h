// BlobReader: the one pread-shaped read interface of clip.
//
// A blob is an immutable byte sequence of known size: a layer in a registry, a file
// on disk, a cached span. Every data source clip reads from implements BlobReader,
// and decorators (verifying, caching, fault-injecting) wrap one BlobReader in another,
// so tests can replace any layer of the stack with a fake.
//
//   CLIP_ASSIGN_OR_RETURN(auto blob, FileBlobReader::Open("/layers/abc.tar.gz"));
//   std::string buf(4096, '\0');
//   CLIP_RETURN_IF_ERROR(ReadExactly(*blob, 1 << 20, absl::MakeSpan(buf)));
//
// Thread safety: implementations must be safe for concurrent use; ReadAt and Size
// are const and may be called from many threads at once.
#ifndef CLIP_COMMON_BLOB_READER_H_
#define CLIP_COMMON_BLOB_READER_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace clip {

class BlobReader {
 public:
  virtual ~BlobReader() = default;

  // Reads up to dst.size() bytes starting at `offset` into dst. Returns the number of
  // bytes read, which is smaller than dst.size() only when the blob ends first (0 at or
  // past the end). A short read before the end is never returned: implementations
  // retry or fail. Errors: kUnavailable for a source that may come back (network),
  // kDataLoss for bytes proven wrong, kInternal/kNotFound/... as they mean.
  virtual absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> dst) const = 0;

  // The blob's total size in bytes.
  virtual absl::StatusOr<uint64_t> Size() const = 0;
};

// Reads exactly dst.size() bytes at `offset`; kOutOfRange if the blob ends first.
absl::Status ReadExactly(const BlobReader& blob, uint64_t offset, absl::Span<char> dst);

}  // namespace clip

#endif  // CLIP_COMMON_BLOB_READER_H_
