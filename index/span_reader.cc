#include "index/span_reader.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "index/gzip_checkpoint.h"

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

absl::StatusOr<std::shared_ptr<const std::string>> SpanInflater::GetSpan(size_t span) const {
  const index::v1::LayerIndex& index = *index_;
  if (span >= SpanCount(index)) {
    return absl::OutOfRangeError(absl::StrCat("span ", span, " of ", SpanCount(index)));
  }
  SpanInfo info = GetSpanInfo(index, span);
  const auto& cp = index.checkpoints(static_cast<int>(span));
  std::string out;
  if (index.compression() == index::v1::NONE) {
    out.resize(info.size);
    CLIP_RETURN_IF_ERROR(ReadExactly(blob_, info.offset, absl::MakeSpan(out)));
  } else {
    // Compressed bytes from the checkpoint (its partial byte first) to the next one.
    uint64_t start = cp.compressed_offset() - (cp.bits() > 0 ? 1 : 0);
    uint64_t end = span + 1 < SpanCount(index)
                       ? index.checkpoints(static_cast<int>(span + 1)).compressed_offset()
                       : index.compressed_size();
    std::string input(end - start, '\0');
    CLIP_RETURN_IF_ERROR(ReadExactly(blob_, start, absl::MakeSpan(input)));
    std::string window;
    if (!cp.window().empty()) {
      CLIP_ASSIGN_OR_RETURN(window, DecompressWindow(cp.window()));
    }
    CLIP_ASSIGN_OR_RETURN(out, InflateFromCheckpoint(input, cp.bits(), window, info.size));
  }
  if (Digest::Of(out) != info.digest) {
    return absl::DataLossError(absl::StrCat("span ", span, " at offset ", info.offset,
                                            " does not match its sha256 ", info.digest.Hex()));
  }
  return std::make_shared<const std::string>(std::move(out));
}

}  // namespace clip
