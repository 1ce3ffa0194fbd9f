#include "index/span_source.h"

#include <algorithm>

namespace clip {

size_t SpanCount(const index::v1::LayerIndex& index) {
  return static_cast<size_t>(index.checkpoints_size());
}

SpanInfo GetSpanInfo(const index::v1::LayerIndex& index, size_t span) {
  const auto& cp = index.checkpoints(static_cast<int>(span));
  uint64_t end = span + 1 < SpanCount(index)
                     ? index.checkpoints(static_cast<int>(span + 1)).uncompressed_offset()
                     : index.uncompressed_size();
  std::array<uint8_t, Digest::kSize> bytes{};
  std::memcpy(bytes.data(), cp.span_sha256().data(),
              std::min<size_t>(Digest::kSize, cp.span_sha256().size()));
  return SpanInfo{cp.uncompressed_offset(), end - cp.uncompressed_offset(),
                  Digest::FromBytes(bytes)};
}

size_t SpanAt(const index::v1::LayerIndex& index, uint64_t offset) {
  const auto& cps = index.checkpoints();
  auto it = std::upper_bound(
      cps.begin(), cps.end(), offset,
      [](uint64_t off, const index::v1::Checkpoint& cp) { return off < cp.uncompressed_offset(); });
  return static_cast<size_t>(it - cps.begin()) - 1;  // cps[0] is at 0.
}

}  // namespace clip
