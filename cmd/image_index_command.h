// `clipctl index IMAGE_REF [--push] [--platform os/arch] [--store DIR]`: builds the clip
// index of every layer of an image straight from its registry (the platform's manifest
// of a multi-arch image, default the host's), and with --push publishes them as the
// artifact the snapshotter discovers (registry/index_artifact.h) and moves the image's
// tag (or --bind-tag) to the image's binding (registry/image_binding.h: the same image
// for every runtime, plus the chain of digests a node trusts; --no-bind skips it).
// --store also writes
// each index to DIR/<layer hex> (the daemon's local index store, <root>/indexes).
// Layers clip cannot index (zstd, foreign) are listed and left to the ordinary path.
//
// Each layer is downloaded (digest verified, resumed after a broken transfer) to a
// temporary file, indexed, and the file removed; `jobs` layers at a time. On a
// terminal, a progress line on stderr shows the bytes done.
//
// Thread safety: one call at a time per RegistryClient is not required; the call
// itself is single-threaded from the caller's view.
#ifndef CLIP_CMD_IMAGE_INDEX_COMMAND_H_
#define CLIP_CMD_IMAGE_INDEX_COMMAND_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "index/layer_indexer.h"
#include "registry/registry_client.h"

namespace clip {

struct ImageIndexOptions {
  std::string image;
  std::string platform;  // empty: the host's
  bool push = false;
  // With push: move a tag to the image's binding (registry/image_binding.h), an image
  // index listing the image's manifests unchanged and the clip index artifact of the
  // indexed one. The tag is `bind_tag`, or the reference's own tag when empty.
  bool bind = true;
  std::string bind_tag;
  std::string store_dir;  // optional
  // Access profiles to publish with the indexes (--push): DIR/<layer hex>, as the daemon
  // keeps them in <root>/profiles. Each is checked against the layer's new index.
  std::string profiles_dir;  // optional
  std::string tmp_dir;       // empty: $TMPDIR or /var/tmp
  IndexOptions index;        // checkpoint placement
  int jobs = 2;
  bool progress = false;  // draw the progress line (callers pass isatty(stderr))
};

absl::Status ImageIndexCommand(const ImageIndexOptions& options, const RegistryClient& registry,
                               std::ostream& out, std::ostream& progress);

}  // namespace clip

#endif  // CLIP_CMD_IMAGE_INDEX_COMMAND_H_
