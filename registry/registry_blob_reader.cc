#include "registry/registry_blob_reader.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace clip {

absl::StatusOr<std::unique_ptr<RegistryBlobReader>> RegistryBlobReader::Open(
    const RegistryClient& client, const Reference& repo, const Digest& digest) {
  CLIP_ASSIGN_OR_RETURN(uint64_t size, client.BlobSize(repo, digest));
  return std::make_unique<RegistryBlobReader>(client, repo, digest, size);
}

absl::StatusOr<size_t> RegistryBlobReader::ReadAt(uint64_t offset, absl::Span<char> dst) const {
  if (offset >= size_ || dst.empty()) return 0;
  uint64_t n = std::min<uint64_t>(dst.size(), size_ - offset);
  CLIP_ASSIGN_OR_RETURN(std::string bytes, client_.ReadBlobRange(repo_, digest_, offset, n));
  if (bytes.size() != n) {
    return absl::DataLossError(absl::StrCat("short range read of ", digest_.ToString()));
  }
  std::memcpy(dst.data(), bytes.data(), n);
  return static_cast<size_t>(n);
}

}  // namespace clip
