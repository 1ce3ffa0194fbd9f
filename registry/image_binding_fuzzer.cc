// libFuzzer target for the registry documents a node's trust rests on (issue 24), fed
// the same bytes: ParseImageBinding never crashes, and whatever it accepts is
// self-consistent (every artifact is for a manifest the binding lists, none has a
// platform); ParseIndexArtifact never crashes, and what it accepts lists each layer's
// index once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "registry/image_binding.h"
#include "registry/index_artifact_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<clip::ImageBinding> b = clip::ParseImageBinding(bytes);
  if (b.ok()) {
    for (const auto& [manifest, artifact] : b->artifacts) {
      absl::StatusOr<clip::Digest> d = clip::Digest::Parse(manifest);
      if (!d.ok() || !b->Lists(*d) || artifact.platform.has_value()) abort();
    }
  }
  absl::StatusOr<clip::IndexArtifact> a = clip::ParseIndexArtifact(bytes);
  if (a.ok()) {
    std::set<std::string> layers;
    for (const clip::PublishedIndex& p : a->indexes) {
      if (!layers.insert(p.layer.ToString()).second) abort();
    }
  }
  return 0;
}
