#include "index/access_profile.h"

#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/coding.h"

namespace clip {
namespace {

using index::v1::AccessProfile;

absl::Status Invalid(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("access profile: ", what));
}

}  // namespace

Digest SpanLayoutDigest(const index::v1::LayerIndex& index) {
  Sha256Hasher h;
  for (const auto& cp : index.checkpoints())
    h.Update(cp.span_sha256().data(), cp.span_sha256().size());
  return h.Finish();
}

AccessProfile MakeProfile(const index::v1::LayerIndex& index, const std::vector<uint32_t>& spans) {
  AccessProfile p;
  p.set_layer_digest(index.layer_digest());
  Digest layout = SpanLayoutDigest(index);
  p.set_span_layout_sha256(reinterpret_cast<const char*>(layout.bytes().data()), Digest::kSize);
  p.set_span_count(static_cast<uint32_t>(index.checkpoints_size()));
  absl::flat_hash_set<uint32_t> seen;
  for (uint32_t s : spans) {
    if (seen.insert(s).second) p.add_spans(s);
  }
  return p;
}

std::string EncodeProfile(const AccessProfile& profile) {
  std::string payload;
  profile.SerializeToString(&payload);
  std::string out(kProfileMagic, sizeof(kProfileMagic));
  PutFixed32(&out, kProfileFormatVersion);
  PutFixed32(&out, 0);  // flags
  PutFixed64(&out, payload.size());
  out += payload;
  Digest sum = Digest::Of(out);
  out.append(reinterpret_cast<const char*>(sum.bytes().data()), Digest::kSize);
  return out;
}

absl::StatusOr<AccessProfile> DecodeProfile(absl::string_view bytes) {
  if (bytes.size() < kProfileHeaderSize + kProfileTrailerSize) return Invalid("file too short");
  if (std::memcmp(bytes.data(), kProfileMagic, sizeof(kProfileMagic)) != 0) {
    return Invalid("bad magic (not a clip access profile)");
  }
  const uint64_t version = DecodeFixed32(bytes.data() + 8);
  if (version != kProfileFormatVersion) {
    return absl::UnimplementedError(absl::StrCat("access profile: format version ", version,
                                                 " is not supported (this build reads ",
                                                 kProfileFormatVersion, ")"));
  }
  if (DecodeFixed32(bytes.data() + 12) != 0) return Invalid("unknown flags");
  const uint64_t length = DecodeFixed64(bytes.data() + 16);
  if (length != bytes.size() - kProfileHeaderSize - kProfileTrailerSize) {
    return Invalid("payload length does not match the file size (truncated?)");
  }
  if (length > kMaxProfilePayload) return Invalid("payload too large");
  absl::string_view framed = bytes.substr(0, kProfileHeaderSize + length);
  Digest sum = Digest::Of(framed);
  if (std::memcmp(sum.bytes().data(), bytes.data() + framed.size(), Digest::kSize) != 0) {
    return Invalid("checksum mismatch");
  }
  AccessProfile p;
  if (!p.ParseFromArray(bytes.data() + kProfileHeaderSize, static_cast<int>(length))) {
    return Invalid("payload does not parse");
  }
  if (p.span_layout_sha256().size() != Digest::kSize) return Invalid("bad span layout digest");
  absl::flat_hash_set<uint32_t> seen;
  for (uint32_t s : p.spans()) {
    if (s >= p.span_count()) return Invalid(absl::StrCat("span ", s, " of ", p.span_count()));
    if (!seen.insert(s).second) return Invalid(absl::StrCat("span ", s, " listed twice"));
  }
  return p;
}

absl::Status CheckProfileFor(const AccessProfile& profile, const index::v1::LayerIndex& index) {
  if (profile.layer_digest() != index.layer_digest()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "access profile of layer ", profile.layer_digest(), ", not ", index.layer_digest()));
  }
  Digest layout = SpanLayoutDigest(index);
  if (profile.span_count() != static_cast<uint32_t>(index.checkpoints_size()) ||
      std::memcmp(profile.span_layout_sha256().data(), layout.bytes().data(), Digest::kSize) != 0) {
    return absl::FailedPreconditionError(
        "access profile is stale: the layer was indexed again with other spans");
  }
  return absl::OkStatus();
}

}  // namespace clip
