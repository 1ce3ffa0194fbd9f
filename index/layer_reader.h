// LayerReader: random access to a layer's uncompressed tar stream, and to one file's
// bytes, through its index and a SpanSource. It is itself a BlobReader (the
// uncompressed layer), so it stacks like any other reader.
//
//   LayerReader reader(index, std::make_shared<SpanInflater>(index, *blob));
//   CLIP_ASSIGN_OR_RETURN(size_t n, reader.ReadFile(entry_id, 0, absl::MakeSpan(buf)));
//
// The most recently used span is kept, so sequential reads smaller than a span
// inflate each span once; real caching belongs to the SpanSource (cache/).
//
// File reads tell the span source the file's last span and whether the read starts the
// file (ReadHint), so readahead stays inside the file being read.
//
// Slices: FileSlices/SlicesAt answer with pieces of the cached spans themselves, each
// holding its span alive, so a caller that only forwards the bytes (the FUSE reply's
// iovecs) copies nothing; ReadAt/ReadFile copy those pieces into the caller's buffer.
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_INDEX_LAYER_READER_H_
#define CLIP_INDEX_LAYER_READER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/blob_reader.h"
#include "index/span_source.h"

namespace clip {

// A piece of a span: `size` bytes at `data`, valid while `owner` lives.
struct SpanSlice {
  std::shared_ptr<const std::string> owner;
  const char* data = nullptr;
  size_t size = 0;
};

class LayerReader final : public BlobReader {
 public:
  LayerReader(std::shared_ptr<const index::v1::LayerIndex> index,
              std::shared_ptr<const SpanSource> spans)
      : index_(std::move(index)), spans_(std::move(spans)) {}

  // Reads the uncompressed tar stream.
  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> dst) const override;
  absl::StatusOr<uint64_t> Size() const override { return index_->uncompressed_size(); }

  // Reads regular file (or hardlink to one) `entry` at `offset`; short only at EOF.
  absl::StatusOr<size_t> ReadFile(uint32_t entry, uint64_t offset, absl::Span<char> dst) const;

  // The bytes ReadAt / ReadFile would copy, as slices of the spans in order (empty at
  // or past the end); their sizes add up to what those would return.
  absl::StatusOr<std::vector<SpanSlice>> SlicesAt(uint64_t offset, size_t size) const;
  absl::StatusOr<std::vector<SpanSlice>> FileSlices(uint32_t entry, uint64_t offset,
                                                    size_t size) const;

 private:
  absl::StatusOr<std::shared_ptr<const std::string>> Span(size_t span, const ReadHint& hint) const;
  absl::StatusOr<std::vector<SpanSlice>> Slices(uint64_t offset, size_t size, ReadHint hint) const;

  std::shared_ptr<const index::v1::LayerIndex> index_;
  std::shared_ptr<const SpanSource> spans_;
  mutable absl::Mutex mu_;
  mutable size_t last_span_ ABSL_GUARDED_BY(mu_) = SIZE_MAX;
  mutable std::shared_ptr<const std::string> last_bytes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip

#endif  // CLIP_INDEX_LAYER_READER_H_
