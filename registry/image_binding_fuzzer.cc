// libFuzzer target: ParseImageBinding on arbitrary bytes never crashes, and whatever it
// accepts is self-consistent (every artifact is for a manifest the binding lists).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "registry/image_binding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<clip::ImageBinding> b =
      clip::ParseImageBinding(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!b.ok()) return 0;
  for (const auto& [manifest, artifact] : b->artifacts) {
    absl::StatusOr<clip::Digest> d = clip::Digest::Parse(manifest);
    if (!d.ok() || !b->Lists(*d) || artifact.platform.has_value()) abort();
  }
  return 0;
}
