// Image manifests as a puller reads them: media types, platforms, descriptors, the
// image manifest's config and layers, and an index's list of manifests. Parsing only:
// fetching and verifying is RegistryClient's (registry_client.h).
//
//   CLIP_ASSIGN_OR_RETURN(ImageManifest m, ParseImageManifest(manifest.bytes));
//   for (const Descriptor& layer : m.layers) ...
//
// Errors: kDataLoss for what is not the JSON it should be; kInvalidArgument for a
// platform that is not os/architecture[/variant].
//
// Thread safety: values and pure functions.
#ifndef CLIP_REGISTRY_MANIFEST_H_
#define CLIP_REGISTRY_MANIFEST_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"

namespace clip {

inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";

struct Platform {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
  static Platform Host();
  // "os/architecture[/variant]", as containerd and docker write it ("linux/arm64/v8").
  static absl::StatusOr<Platform> Parse(absl::string_view text);
  std::string ToString() const;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::string artifact_type;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
};

struct Manifest {
  Digest digest;
  std::string media_type;
  std::string bytes;
};

// The parts of an image manifest (OCI or Docker schema 2) a puller needs.
struct ImageManifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};
// kDataLoss when `bytes` is not an image manifest (e.g. an index, or not JSON).
absl::StatusOr<ImageManifest> ParseImageManifest(absl::string_view bytes);

// The manifests an image index (or OCI referrers answer) lists; none when it lists none.
absl::StatusOr<std::vector<Descriptor>> ParseIndexManifests(absl::string_view bytes);

// Whether `media_type` is an index (OCI index or Docker manifest list).
bool IsIndex(absl::string_view media_type);

// The variant a platform means: arm64 without one is v8.
std::string NormalizeVariant(const Platform& p);

}  // namespace clip

#endif  // CLIP_REGISTRY_MANIFEST_H_
