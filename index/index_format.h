// The clip index file: framing, encoding and validated decoding of a LayerIndex.
// The byte layout and every check DecodeIndex makes are specified in FORMAT.md.
//
//   std::string bytes = EncodeIndex(index);
//   CLIP_ASSIGN_OR_RETURN(index::v1::LayerIndex back, DecodeIndex(bytes));
//   CLIP_ASSIGN_OR_RETURN(std::string checked, EncodeCheckedIndex(index));  // to publish
//
// DecodeIndex never crashes on bad bytes: corrupt, truncated or inconsistent input is
// kDataLoss, a format version it does not read kUnimplemented (saying to re-index).
//
// Thread safety: pure functions, safe to call concurrently.
#ifndef CLIP_INDEX_INDEX_FORMAT_H_
#define CLIP_INDEX_INDEX_FORMAT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "clip/index/v1/index.pb.h"

namespace clip {

inline constexpr char kIndexMagic[8] = {'C', 'L', 'I', 'P', 'I', 'D', 'X', '\n'};
// The version EncodeIndex writes. Version 1 declared names, link targets, owners and
// xattr names as protobuf `string` (UTF-8 only); version 2 declares them `bytes`. The
// wire layout is the same, so DecodeIndex reads both (a version 1 file that parsed
// then parses now); an older clip refuses version 2 by its number instead of failing
// to parse a name that is not UTF-8.
inline constexpr uint32_t kIndexFormatVersion = 2;
inline constexpr uint32_t kOldestReadableIndexVersion = 1;
inline constexpr size_t kIndexHeaderSize = 32;
inline constexpr size_t kIndexTrailerSize = 32;
// Decoded payloads larger than this are refused (an index is ~1% of its layer).
inline constexpr uint64_t kMaxIndexPayload = uint64_t{1} << 30;

std::string EncodeIndex(const index::v1::LayerIndex& index);
absl::StatusOr<index::v1::LayerIndex> DecodeIndex(absl::string_view bytes);

// EncodeIndex, then DecodeIndex of the result, compared field by field with `index`:
// what is written or published must read back as what was built. kDataLoss (with the
// first difference) when it does not, e.g. an index that breaks an invariant.
absl::StatusOr<std::string> EncodeCheckedIndex(const index::v1::LayerIndex& index);

// The semantic checks DecodeIndex applies after parsing (FORMAT.md, "Invariants").
absl::Status ValidateIndex(const index::v1::LayerIndex& index);

}  // namespace clip

#endif  // CLIP_INDEX_INDEX_FORMAT_H_
