// RecordCommand: `clipctl record IMAGE [-- CMD...]` records the image's access profiles
// (index/FORMAT.md) on this node: what a container of the image reads at its start, per
// layer, as the clip daemon records it on a layer's first mount.
//
//   1. resolves the image and drops the daemon's earlier profiles of its layers (with a
//      profile the daemon would replay it instead of recording);
//   2. pulls the image lazily (clipctl pull), refusing layers that are mounted already:
//      a recording needs the layer's first mount (remove the image first);
//   3. runs one container of it to its end with containerd's own client (`ctr run --rm
//      --snapshotter clip`: the OCI runtime spec is ctr's, not clip's to rewrite);
//   4. removes the image (`ctr images rm --sync`), which unmounts its layers: the daemon
//      ends each recording there and keeps the profile in <root>/profiles (and the remote
//      cache); with keep_image it waits instead until the profiles appear;
//   5. reports each layer's profile and copies them to `output_dir` (for
//      `clipctl index --push --profiles DIR`).
//
// Thread safety: a command; one call at a time.
#ifndef CLIP_CMD_RECORD_COMMAND_H_
#define CLIP_CMD_RECORD_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cmd/lazy_pull.h"
#include "registry/registry_client.h"

namespace clip {

struct RecordOptions {
  LazyPullOptions pull;
  std::string daemon_root = "/var/lib/containerd-clip-grpc";  // profiles in <root>/profiles
  std::string ctr = "ctr";                                    // containerd's client
  std::vector<std::string> command;  // empty: the image's own entrypoint and command
  std::string output_dir;            // optional: the profiles are copied here
  bool keep_image = false;
  absl::Duration wait = absl::Seconds(30);  // with keep_image: for the recordings to end
};

absl::Status RecordCommand(const RecordOptions& options, const RegistryClient& registry,
                           std::ostream& out);

}  // namespace clip

#endif  // CLIP_CMD_RECORD_COMMAND_H_
