#include "cmd/mount_command.h"

#include <signal.h>

#include <iostream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cache/disk_cache.h"
#include "cache/memory_cache.h"
#include "cache/tiered_span_source.h"
#include "common/file_blob_reader.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "fs/fuse_server.h"
#include "fs/layer_fs.h"
#include "index/index_format.h"
#include "index/span_reader.h"
#include "registry/registry_blob_reader.h"
#include "registry/registry_client.h"

namespace clip {
namespace {

struct Origin {
  std::unique_ptr<RegistryClient> client;  // for blob URLs
  std::unique_ptr<BlobReader> blob;
};

// http[s]://HOST/v2/REPOSITORY/blobs/sha256:HEX
absl::StatusOr<Origin> OpenLayer(const std::string& layer) {
  Origin o;
  if (!absl::StartsWith(layer, "http://") && !absl::StartsWith(layer, "https://")) {
    CLIP_ASSIGN_OR_RETURN(o.blob, FileBlobReader::Open(layer));
    return o;
  }
  bool plain = absl::StartsWith(layer, "http://");
  std::string rest = layer.substr(plain ? 7 : 8);
  size_t slash = rest.find('/');
  size_t blobs = rest.rfind("/blobs/");
  if (slash == std::string::npos || blobs == std::string::npos ||
      rest.compare(slash, 4, "/v2/") != 0 || blobs <= slash + 4) {
    return absl::InvalidArgumentError(
        "blob URL must look like http[s]://HOST/v2/REPOSITORY/blobs/sha256:HEX");
  }
  std::string host = rest.substr(0, slash);
  std::string repo = rest.substr(slash + 4, blobs - slash - 4);
  CLIP_ASSIGN_OR_RETURN(Digest digest, Digest::Parse(rest.substr(blobs + 7)));
  CLIP_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(absl::StrCat(host, "/", repo, ":latest")));
  RegistryClient::Options ro;
  if (plain) ro.hosts = std::make_shared<DefaultHosts>(std::set<std::string>{host});
  o.client = std::make_unique<RegistryClient>(ro);
  CLIP_ASSIGN_OR_RETURN(o.blob, RegistryBlobReader::Open(*o.client, ref, digest));
  return o;
}

}  // namespace

absl::Status MountCommand(const MountCommandOptions& options) {
  CLIP_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(options.index_path));
  absl::StatusOr<index::v1::LayerIndex> decoded = DecodeIndex(bytes);
  if (!decoded.ok()) {
    return absl::Status(decoded.status().code(),
                        absl::StrCat(options.index_path, ": ", decoded.status().message()));
  }
  auto index = std::make_shared<const index::v1::LayerIndex>(*std::move(decoded));
  CLIP_ASSIGN_OR_RETURN(Origin origin, OpenLayer(options.layer));
  CLIP_ASSIGN_OR_RETURN(uint64_t blob_size, origin.blob->Size());
  if (blob_size != index->compressed_size()) {
    return absl::InvalidArgumentError(absl::StrCat("layer is ", blob_size,
                                                   " bytes; the index is for a layer of ",
                                                   index->compressed_size()));
  }
  MemoryCache memory(options.memory_cache_bytes);
  std::unique_ptr<DiskCache> disk;
  if (!options.cache_dir.empty()) {
    CLIP_ASSIGN_OR_RETURN(disk, DiskCache::Open({options.cache_dir, uint64_t{10} << 30}));
  }
  FillExecutor executor;
  auto spans = std::make_shared<TieredSpanSource>(
      index, std::make_shared<SpanInflater>(index, *origin.blob),
      CacheTiers{&memory, disk.get(), nullptr, &executor});
  auto fs = std::make_shared<LayerFs>(index, spans);

  // Signals are taken synchronously below; no thread may receive them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  FuseServer server(options.threads);
  CLIP_ASSIGN_OR_RETURN(FuseServer::MountId id, server.Mount(options.mountpoint, fs));
  std::cerr << "clipctl: mounted " << index->diff_id() << " at " << options.mountpoint << "\n";
  struct timespec tick = {0, 200 * 1000 * 1000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::cerr << "clipctl: unmounting " << options.mountpoint << "\n";
      CLIP_RETURN_IF_ERROR(server.Unmount(id));
      break;
    }
    if (server.WaitUnmounted(id, absl::ZeroDuration())) {
      std::cerr << "clipctl: " << options.mountpoint << " was unmounted\n";
      break;
    }
  }
  executor.Drain();
  return absl::OkStatus();
}

}  // namespace clip
