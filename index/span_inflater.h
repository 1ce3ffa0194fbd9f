// SpanInflater: the origin SpanSource of a layer. It reads only the compressed bytes
// of a span (or of a run of adjacent spans) from the layer blob, inflates them from
// the span's checkpoint and verifies each against the index's digest.
//
//   auto index = std::make_shared<const index::v1::LayerIndex>(...);
//   SpanInflater spans(index, *blob);
//   CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes, spans.GetSpan(3));
//
// Errors: kDataLoss when the bytes do not inflate or do not match the digest; the
// blob's errors (e.g. kUnavailable) pass through.
//
// Thread safety: safe for concurrent use (as safe as the blob reader, which all are).
#ifndef CLIP_INDEX_SPAN_INFLATER_H_
#define CLIP_INDEX_SPAN_INFLATER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clip/index/v1/index.pb.h"
#include "common/blob_reader.h"
#include "index/span_source.h"

namespace clip {

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

#endif  // CLIP_INDEX_SPAN_INFLATER_H_
