// `clipctl layers`: the lazily mounted layers of a clip root as an operator sees them,
// one line each: its snapshot, layer and image, its state - lazy (none of its spans on
// this node), filling (n% of its spans on disk, by background fill or reads) or local (a
// plain directory tree overlayfs reads, issue 26) - its bytes on this node (the tree, or
// the spans in the disk cache), whether its FUSE mount is up, and how many overlay
// mounts (containers, views) read it. Everything comes from the root (the metadata
// database, the index store, the disk cache, the trees) and the mount table, so it
// answers with the daemon up or down. The daemon's own gauge is `clip_layers{state}`.
//
//   CLIP_ASSIGN_OR_RETURN(auto layers, ListLayers("/var/lib/containerd-clip-grpc",
//                                                 ReadWholeFile("/proc/self/mountinfo")));
//   std::cout << FormatLayers(layers);
//
// Thread safety: free functions.
#ifndef CLIP_CMD_LAYERS_COMMAND_H_
#define CLIP_CMD_LAYERS_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace clip {

struct LayerState {
  std::string snapshot;  // containerd's name for it (the chain id)
  int64_t id = 0;        // its directory: <root>/snapshots/<id>
  std::string layer;     // the layer's digest
  std::string image;     // the image it was pulled with
  std::string state;     // "lazy", "filling" or "local"
  int percent = 0;       // of its spans on disk (100 when local)
  uint64_t bytes = 0;    // on this node: the tree, or its spans in the disk cache
  bool fuse = false;     // its FUSE mount is up
  int readers = 0;       // overlay mounts whose lowerdirs name its mount or its tree
};

// `mountinfo`: the text of /proc/self/mountinfo.
absl::StatusOr<std::vector<LayerState>> ListLayers(const std::string& root,
                                                   absl::string_view mountinfo);
// A table with a header line.
std::string FormatLayers(const std::vector<LayerState>& layers);

}  // namespace clip

#endif  // CLIP_CMD_LAYERS_COMMAND_H_
