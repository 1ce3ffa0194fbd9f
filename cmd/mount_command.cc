#include "cmd/mount_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>

#include <iostream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cache/disk_cache.h"
#include "cache/memory_cache.h"
#include "common/file_blob_reader.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "fs/fd_holder.h"
#include "fs/fuse_server.h"
#include "fs/layer_fs.h"
#include "fs/systemd_fd_store.h"
#include "index/index_format.h"
#include "index/span_inflater.h"
#include "index/span_source.h"
#include "lazy/lazy_layer.h"
#include "lazy/tiered_span_source.h"
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
    return WithContext(decoded.status(), options.index_path);
  }
  auto index = std::make_shared<const index::v1::LayerIndex>(*std::move(decoded));
  CLIP_ASSIGN_OR_RETURN(Origin origin, OpenLayer(options.layer));
  CLIP_ASSIGN_OR_RETURN(uint64_t blob_size, origin.blob->Size());
  if (blob_size != index->compressed_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer is ", blob_size, " bytes; the index is for a layer of ", index->compressed_size()));
  }
  // Signals are taken synchronously below; no thread may receive them, so they are
  // blocked before the first thread (the executors') starts: a SIGTERM delivered to a
  // thread that does not block it would kill the process with the mount left behind.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  MemoryCache memory(options.memory_cache_bytes);
  std::unique_ptr<DiskCache> disk;
  if (!options.cache_dir.empty()) {
    CLIP_ASSIGN_OR_RETURN(disk, DiskCache::Open({options.cache_dir, uint64_t{10} << 30}));
  }
  WriteBack write_back({});
  ThreadPool readahead(4, 32);
  CacheTiers tiers{&memory, disk.get(), nullptr, &write_back};
  tiers.readahead = &readahead;
  tiers.readahead_spans = 6;
  CLIP_ASSIGN_OR_RETURN(Digest digest, Digest::Parse(index->layer_digest()));
  LazyLayer::Options lo;
  lo.tiers = tiers;

  std::unique_ptr<FdStore> holder;
  int lock = -1;
  if (options.systemd_fd_store) {
    holder = SystemdFdStore::FromEnvironment();
    if (holder == nullptr)
      return absl::FailedPreconditionError("--systemd-fd-store: $NOTIFY_SOCKET is unset");
  } else if (!options.holder_socket.empty()) {
    // One server per connection: wait until the previous one is gone (its lock goes
    // with its last thread), then take over what the holder keeps.
    lock = open((options.holder_socket + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
      return absl::InternalError(absl::StrCat("cannot lock ", options.holder_socket, ".lock"));
    }
    if (options.holder_binary.empty()) {
      CLIP_ASSIGN_OR_RETURN(holder, FdHolderClient::Connect(options.holder_socket));
    } else {
      CLIP_ASSIGN_OR_RETURN(
          holder, FdHolderClient::ConnectOrStart(options.holder_socket, options.holder_binary));
    }
  }
  // The holder knows mounts by absolute path. Only the parent is resolved: a stat of
  // the mountpoint itself would wait for the very server this process is to become.
  std::string dir = options.mountpoint;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  const std::string base = slash == std::string::npos ? dir : dir.substr(slash + 1);
  dir = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) return absl::NotFoundError(absl::StrCat(dir, ": no such directory"));
  const std::string mountpoint = absl::StrCat(real, std::string(real) == "/" ? "" : "/", base);
  free(real);
  FuseServer server(options.threads, holder.get());
  if (holder) {
    CLIP_ASSIGN_OR_RETURN(std::vector<HeldFd> held, holder->List());
    server.OfferHeld(std::move(held));
  }
  // The same lazy layer the daemon serves, without a tree (its spans only).
  LazyLayer layer(digest, index, std::move(origin.blob), /*dir=*/"", lo);
  CLIP_RETURN_IF_ERROR(layer.Serve(server, mountpoint).status());
  const FuseServer::MountId id = *layer.mount_id();
  server.DropUnclaimed();
  std::cerr << "clipctl: " << (server.adopted() ? "took over " : "mounted ") << index->diff_id()
            << " at " << mountpoint << "\n";
  struct timespec tick = {0, 200 * 1000 * 1000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGTERM && holder) {
      std::cerr << "clipctl: handing " << mountpoint << " over\n";
      server.Detach();
      break;
    }
    if (sig == SIGINT || sig == SIGTERM) {
      std::cerr << "clipctl: unmounting " << mountpoint << "\n";
      CLIP_RETURN_IF_ERROR(layer.Close());
      break;
    }
    if (server.WaitUnmounted(id, absl::ZeroDuration())) {
      std::cerr << "clipctl: " << mountpoint << " was unmounted\n";
      break;
    }
  }
  write_back.Flush();
  return absl::OkStatus();
}

}  // namespace clip
