// Spans of a layer: the uncompressed bytes between consecutive checkpoints, each
// verified against the sha256 the index records. Spans are the unit of fetching,
// inflating, verifying and caching.
//
// SpanSource is the interface every layer read goes through: SpanInflater
// (span_inflater.h) is the origin, the cache tiers of cache/ wrap one. The helpers
// locate spans in the index's checkpoint list.
//
//   CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes, spans.GetSpan(3));
//   SpanInfo where = GetSpanInfo(index, 3);  // offset, size, digest
//
// Thread safety: the helpers are pure; SpanSource implementations are safe for
// concurrent use.
#ifndef CLIP_INDEX_SPAN_SOURCE_H_
#define CLIP_INDEX_SPAN_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clip/index/v1/index.pb.h"
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

}  // namespace clip

#endif  // CLIP_INDEX_SPAN_SOURCE_H_
