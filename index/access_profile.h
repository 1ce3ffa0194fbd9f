// Access profiles: what a container read first from one layer, as span numbers in
// first-read order (issue 17). The daemon records one on a layer's first start on a
// node and replays it on later mounts: the spans are fetched in parallel before the
// container asks for them. The byte layout and every check DecodeProfile makes are in
// FORMAT.md ("Access profiles"); the payload is proto/clip/index/v1/access_profile.proto.
//
//   AccessProfile p = MakeProfile(index, {4, 0, 5, 1});
//   std::string bytes = EncodeProfile(p);
//   CLIP_ASSIGN_OR_RETURN(AccessProfile back, DecodeProfile(bytes));
//   CLIP_RETURN_IF_ERROR(CheckProfileFor(back, index));  // stale or foreign: ignore it
//
// Errors: corrupt, truncated or inconsistent bytes are kDataLoss; another format version
// kUnimplemented; a profile of another layer or span layout kFailedPrecondition.
//
// Thread safety: pure functions, safe to call concurrently.
#ifndef CLIP_INDEX_ACCESS_PROFILE_H_
#define CLIP_INDEX_ACCESS_PROFILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "clip/index/v1/access_profile.pb.h"
#include "clip/index/v1/index.pb.h"
#include "common/digest.h"

namespace clip {

inline constexpr char kProfileMagic[8] = {'C', 'L', 'I', 'P', 'P', 'R', 'F', '\n'};
inline constexpr uint32_t kProfileFormatVersion = 1;
inline constexpr size_t kProfileHeaderSize = 24;   // magic, version, flags, length
inline constexpr size_t kProfileTrailerSize = 32;  // sha256 of everything before it
inline constexpr uint64_t kMaxProfilePayload = 16 << 20;

// sha256 over the index's span digests in order: names the span numbering.
Digest SpanLayoutDigest(const index::v1::LayerIndex& index);

// A profile of `index`'s layer with `spans` (first-read order; duplicates dropped).
index::v1::AccessProfile MakeProfile(const index::v1::LayerIndex& index,
                                     const std::vector<uint32_t>& spans);

std::string EncodeProfile(const index::v1::AccessProfile& profile);
absl::StatusOr<index::v1::AccessProfile> DecodeProfile(absl::string_view bytes);

// OK if `profile` speaks of `index`'s layer and span layout.
absl::Status CheckProfileFor(const index::v1::AccessProfile& profile,
                             const index::v1::LayerIndex& index);

}  // namespace clip

#endif  // CLIP_INDEX_ACCESS_PROFILE_H_
