// RegistryBlobReader: a blob in a registry as a BlobReader, read with Range requests
// (the origin of lazy reads, and of index builds straight from a registry).
//
//   CLIP_ASSIGN_OR_RETURN(auto blob, RegistryBlobReader::Open(client, ref, layer_digest));
//   CLIP_ASSIGN_OR_RETURN(index::v1::LayerIndex index, BuildLayerIndex(*blob));
//
// Bytes of a range cannot be verified alone: consumers verify what they assemble
// (span digests, the layer digest of a full read).
//
// Thread safety: safe for concurrent use (the client is).
#ifndef CLIP_REGISTRY_REGISTRY_BLOB_READER_H_
#define CLIP_REGISTRY_REGISTRY_BLOB_READER_H_

#include <memory>

#include "common/blob_reader.h"
#include "registry/registry_client.h"

namespace clip {

class RegistryBlobReader final : public BlobReader {
 public:
  // Asks the registry for the size (HEAD). `client` must outlive the reader.
  static absl::StatusOr<std::unique_ptr<RegistryBlobReader>> Open(const RegistryClient& client,
                                                                  const Reference& repo,
                                                                  const Digest& digest);
  // When the size is known from a descriptor: no request.
  RegistryBlobReader(const RegistryClient& client, Reference repo, Digest digest, uint64_t size)
      : client_(client), repo_(std::move(repo)), digest_(digest), size_(size) {}

  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> dst) const override;
  absl::StatusOr<uint64_t> Size() const override { return size_; }

 private:
  const RegistryClient& client_;
  const Reference repo_;
  const Digest digest_;
  const uint64_t size_;
};

}  // namespace clip

#endif  // CLIP_REGISTRY_REGISTRY_BLOB_READER_H_
