// Spans of a layer: the uncompressed bytes between consecutive checkpoints, each
// verified against the sha256 the index records. Spans are the unit of fetching,
// inflating, verifying and caching.
//
// SpanSource is the interface (the cache tiers of cache/ implement it around an
// origin); SpanInflater is the origin: it reads only the compressed bytes of the span
// from the layer blob, inflates them from the span's checkpoint and verifies them.
//
//   auto index = std::make_shared<const index::v1::LayerIndex>(...);
//   SpanInflater spans(index, *blob);
//   CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes, spans.GetSpan(3));
//
// Errors: kDataLoss when the bytes do not inflate or do not match the digest; the
// blob's errors (e.g. kUnavailable) pass through.
//
// Thread safety: SpanSource implementations are safe for concurrent use.
#ifndef CLIP_INDEX_SPAN_READER_H_
#define CLIP_INDEX_SPAN_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clip/index/v1/index.pb.h"
#include "common/blob_reader.h"
#include "common/digest.h"

namespace clip {

// Where span `i` lies in the uncompressed stream, and its digest.
struct SpanInfo {
  uint64_t offset = 0;
  uint64_t size = 0;
  Digest digest;
};

// Helpers over the index's checkpoint list.
size_t SpanCount(const index::v1::LayerIndex& index);
SpanInfo GetSpanInfo(const index::v1::LayerIndex& index, size_t span);
// The span holding uncompressed offset `offset` (< uncompressed_size).
size_t SpanAt(const index::v1::LayerIndex& index, uint64_t offset);

// What a reader knows about the read a span serves, for sources that read ahead: the
// last span of the file being read (nothing past the file is worth fetching for it),
// and whether the read starts at the file's first byte (a reader that starts a file
// usually reads on: a large file is worth reading ahead at once).
struct ReadHint {
  size_t last_span = SIZE_MAX;  // SIZE_MAX: not a file read, no bound but the layer's end
  bool file_start = false;
};

class SpanSource {
 public:
  virtual ~SpanSource() = default;
  // The verified bytes of span `span` (< SpanCount).
  virtual absl::StatusOr<std::shared_ptr<const std::string>> GetSpan(size_t span) const = 0;
  // Spans [first, first + count), as GetSpan would return each; sources that can fetch
  // a run at once (one Range request) override it.
  virtual absl::StatusOr<std::vector<std::shared_ptr<const std::string>>> GetSpans(
      size_t first, size_t count) const {
    std::vector<std::shared_ptr<const std::string>> out;
    for (size_t i = first; i < first + count; ++i) {
      absl::StatusOr<std::shared_ptr<const std::string>> s = GetSpan(i);
      if (!s.ok()) return s.status();
      out.push_back(*std::move(s));
    }
    return out;
  }
  // GetSpan for a read described by `hint`; sources that do not read ahead ignore it.
  virtual absl::StatusOr<std::shared_ptr<const std::string>> GetSpanForRead(
      size_t span, const ReadHint& hint) const {
    (void)hint;
    return GetSpan(span);
  }
};

class SpanInflater final : public SpanSource {
 public:
  // `blob` must outlive the inflater.
  SpanInflater(std::shared_ptr<const index::v1::LayerIndex> index, const BlobReader& blob)
      : index_(std::move(index)), blob_(blob) {}

  absl::StatusOr<std::shared_ptr<const std::string>> GetSpan(size_t span) const override;
  // A run of spans from one read of the blob (their compressed bytes are adjacent).
  absl::StatusOr<std::vector<std::shared_ptr<const std::string>>> GetSpans(
      size_t first, size_t count) const override;

 private:
  std::shared_ptr<const index::v1::LayerIndex> index_;
  const BlobReader& blob_;
};

}  // namespace clip

#endif  // CLIP_INDEX_SPAN_READER_H_
