// IndexArtifact: how clip indexes travel through a registry, next to the image they
// describe: one OCI artifact per image manifest (its format: index_artifact_manifest.h),
// pushed with its blobs; since issue 24 also bound to the image (image_binding.h).
//
// Discovery is the OCI 1.1 referrers API; for registries without it (docker-registry),
// Publish also maintains the `sha256-<manifest hex>` tag: an OCI index listing the
// artifacts that refer to that manifest (appended to, never overwritten).
//
// Thread safety: free functions; safe to call concurrently.
#ifndef CLIP_REGISTRY_INDEX_ARTIFACT_H_
#define CLIP_REGISTRY_INDEX_ARTIFACT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/digest.h"
#include "registry/clip_media_types.h"
#include "registry/index_artifact_manifest.h"
#include "registry/reference.h"
#include "registry/registry_client.h"

namespace clip {

// Pushes the index blobs, the artifact and the fallback tag; returns the artifact's digest.
absl::StatusOr<Digest> PublishIndexArtifact(const RegistryClient& client, const Reference& repo,
                                            const Descriptor& subject,
                                            const std::vector<LayerIndexBlob>& indexes);

// The indexes of every clip artifact that names `subject` (referrers API, else its tag
// fallback; the newest artifact wins for a layer listed twice). Fetches manifests only.
// Anyone with push rights can add a referrer: only index_trust = "referrers" believes them.
absl::StatusOr<std::vector<PublishedIndex>> ListPublishedIndexes(const RegistryClient& client,
                                                                 const Reference& repo,
                                                                 const Digest& subject);

// Every published index of `subject` by layer digest string, the blobs fetched
// `parallel` at a time, each verified against its descriptor's digest.
absl::StatusOr<std::map<std::string, std::string>> FetchPublishedIndexes(
    const RegistryClient& client, const Reference& repo, const Digest& subject, int parallel = 4);
// The index blobs of `which` (from ListPublishedIndexes), by layer digest string; with
// `profiles`, also their access profile blobs (same round of requests) into it.
absl::StatusOr<std::map<std::string, std::string>> FetchIndexBlobs(
    const RegistryClient& client, const Reference& repo, const std::vector<PublishedIndex>& which,
    int parallel = 4, std::map<std::string, std::string>* profiles = nullptr);

}  // namespace clip

#endif  // CLIP_REGISTRY_INDEX_ARTIFACT_H_
