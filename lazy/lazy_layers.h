// LazyLayers: the lazy layers of this node, by mountpoint - the lazy path behind the
// snapshotter (snapshotter/remote_layers.h turns containerd's labels into a LayerRef).
// For a layer asked for, it finds the layer's clip index that this node believes
// (IndexFinder, index_finder.h: the local store, the pull's binding through the remote
// cache or the registry, and what index_trust adds) and mounts the layer through FUSE,
// its bytes read lazily from the registry through the cache tiers. A layer without a
// believed index takes the ordinary pull.
//
// Index on first use (optional, off by default): a layer found without an index takes the
// ordinary path at once, and is indexed in the background (its blob read once from the
// registry); the index goes to the local store and the remote cache, so the next
// container on this host mounts it lazily (and every host sharing the remote cache,
// with index_trust = "fleet").
// (Publishing to the registry needs push rights; `clipctl index --push` does that.)
//
// Background fill (optional): `fill_delay` after a layer is mounted - the container's
// start is the busy time - its remaining spans are fetched to the disk cache with
// BackgroundFill (bandwidth-limited, yielding to foreground reads); Unmount cancels it.
//
// Access profiles (optional, `profile_store`): a layer mounted without a profile
// records the spans its readers ask for until they go quiet for `profile_quiet` (or
// `profile_max` passes, or it is unmounted), and keeps that as its access profile in the
// local store and the remote cache. A layer mounted with a believed profile (recorded
// here, bound to the image, or another node's under "fleet"; checked against the
// index, ignored with a log line if stale, foreign or corrupt) has the profiled spans
// fetched at once, in parallel runs, by
// ProfileReplay; Unmount cancels what is left.
//
// Local trees (optional, `local_trees`): once every span of a mounted layer is on this
// node's disk (background fill, or reads), the layer is written out as a plain directory
// tree beside its mountpoint (`<snapshot>/tree`, lazy/layer_tree.h), from verified
// spans. From then on overlayfs gets the tree as the lowerdir of new containers
// (LocalTree), the FUSE mount of running containers reads from the tree (LayerFs::
// UseTree), and the layer's spans leave the disk cache. A layer mounted again with its
// tree there (a restart, a new pull) is served by the tree alone, without FUSE, unless a
// live FUSE connection of a container started earlier is offered for takeover. The tree
// goes with its snapshot's directory. A full disk while writing leaves the layer lazy
// (a log line; tried again later). `tree_quiet` after the tree exists, the layer's FUSE
// mount leaves its mountpoint (the tree is bound there instead, so a path handed out
// before still leads to the layer) and is served only for the running containers whose
// overlayfs holds it: when the last of them stops, the kernel lets go, and the
// connection and the holder's fd end.
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_LAZY_LAZY_LAYERS_H_
#define CLIP_LAZY_LAZY_LAYERS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cache/layer_doc_store.h"
#include "cache/remote_cache.h"
#include "cache/span_store.h"
#include "fs/fuse_server.h"
#include "fs/layer_fs.h"
#include "index/access_profile.h"
#include "index/layer_indexer.h"
#include "lazy/background_fill.h"
#include "lazy/index_finder.h"
#include "lazy/lazy_layer.h"
#include "lazy/profile_replay.h"
#include "lazy/tiered_span_source.h"
#include "registry/reference.h"
#include "registry/registry_blob_reader.h"
#include "registry/registry_client.h"

namespace clip {

// What a layer is, as the snapshotter learnt it from containerd's labels.
struct LayerRef {
  Reference image;
  Digest layer;
  std::optional<Digest> manifest;        // the image's (platform) manifest
  std::optional<Digest> bound_artifact;  // the image's clip binding, as the pull found it
  bool restoring = false;                // mounted lazily before (a restart)
};

// What a mounted layer holds on this node (Usage).
struct LayerUsage {
  int64_t index_bytes = 0;  // its index file
  int64_t span_bytes = 0;   // its spans in the disk cache (0 once it is a tree)
  int64_t inodes = 0;       // its entries
  std::string tree;         // its tree, if it is one (its size is the caller's to count)
};

class LazyLayers {
 public:
  // Optional parts are nullable: null means absent (no remote cache, no replay).
  struct Options {
    std::string index_store;              // directory of indexes by layer digest hex
    CacheTiers tiers;                     // memory/disk/remote caches, shared by all layers
    RemoteCache* remote_index = nullptr;  // where fleet-shared indexes live (optional)
    IndexTrust index_trust = IndexTrust::kBound;
    MetricsRegistry* metrics = nullptr;  // clip_index_refused_total (null: DefaultMetrics())
    bool index_on_first_use = false;
    IndexOptions index_options;                   // placement for indexes built on first use
    std::optional<BackgroundFill::Options> fill;  // unset: no background fill
    absl::Duration fill_delay = absl::Seconds(10);
    // Access profiles: directory of recorded profiles by layer digest hex; empty: none
    // recorded or replayed. Replays run on `replay` (its threads bound the runs in
    // flight across all layers; null: record only).
    std::string profile_store;
    ThreadPool* replay = nullptr;
    ProfileReplay::Options replay_options;
    absl::Duration profile_quiet = absl::Seconds(5);  // no new span this long: recorded
    absl::Duration profile_max = absl::Seconds(60);   // recording never runs longer
    bool local_trees = false;                         // layers made local become trees (above)
    // FUSE passthrough for the files of local layers (fs/passthrough.h), on the mounts of
    // layers whose regular files average at least `passthrough_min_file_bytes`: there an
    // open costs a round trip (to be able to open onto the tree later), which layers of
    // many small files would pay more for than passthrough saves on their reads.
    bool passthrough = false;
    uint64_t passthrough_min_file_bytes = 256 << 10;
    absl::Duration tree_check = absl::Seconds(1);  // how often layers are checked for it
    // Trees are written when the node's lazy layers are quiet: no span read by any of
    // them for this long (a tree write never competes with a container's reads).
    absl::Duration tree_quiet = absl::Seconds(5);
    // Tests: called with each entry's path before the tree writer writes it.
    std::function<void(const std::string&)> before_tree_entry;
  };
  // Layers are read from `registry` and served through `fuse`; both must outlive this.
  LazyLayers(const RegistryClient& registry, FuseServer& fuse, Options options);
  virtual ~LazyLayers();  // unmounts what it mounted
  LazyLayers(const LazyLayers&) = delete;
  LazyLayers& operator=(const LazyLayers&) = delete;

  // true: mounted at `mountpoint` (its directory holds the layer's pin and tree);
  // false: no believed index, not lazy (the ordinary pull).
  absl::StatusOr<bool> Mount(const LayerRef& ref, const std::string& mountpoint);
  absl::Status Unmount(const std::string& mountpoint);
  std::optional<LayerUsage> Usage(const std::string& mountpoint) const;
  // The layer's tree, once it is one (nullopt: read it through the mount).
  std::optional<std::string> LocalTree(const std::string& mountpoint) const;
  size_t mounted() const;
  // Mounted layers that are local trees (tests, metrics).
  size_t local() const;
  // Tree writes that failed (a full disk...): the layer stayed lazy (tests, logs).
  size_t tree_failures() const;
  // The keeper's looks for layers to make trees of, so far (tests wait on it).
  size_t tree_checks() const { return tree_checks_; }
  // Mounted layers by state: local (a tree), filling (background fill running), lazy.
  struct States {
    size_t lazy = 0, filling = 0, local = 0;
  };
  States states() const;
  // Layers whose background fill has finished (tests, metrics).
  size_t filled() const;
  // Blocks until no index-on-first-use job is running (tests).
  void WaitIndexing();
  // The replay progress of the layer at `mountpoint` (null: no profile replayed).
  std::shared_ptr<const ProfileReplay::Progress> Replay(const std::string& mountpoint) const;

  const IndexFinder& finder() const { return finder_; }

 private:
  // Starts indexing `layer` in the background unless a job for it runs already.
  void IndexInBackground(const Reference& image, const Digest& layer);

  // Ends a recording: the profile goes to the local store and the remote cache.
  void SaveProfile(const Digest& layer, const index::v1::LayerIndex& index,
                   const SpanAccessLog& log);
  // Ends recordings whose readers went quiet (or ran too long).
  void KeepProfiles();
  // Starts a tree job for each mounted layer whose spans are all on disk, and detaches
  // local layers' FUSE mounts.
  void CheckLocal();
  // The keeper thread: KeepProfiles and CheckLocal, each at its own pace.
  void Keep();
  // True if another layer object of `digest` than `self` still reads its spans.
  bool SpansShared(const Digest& digest, const LazyLayer* self) const;
  std::shared_ptr<LazyLayer> Find(const std::string& mountpoint) const;

  const RegistryClient& registry_;
  FuseServer& fuse_;
  const Options options_;
  IndexFinder finder_;  // the index and profile stores, and what this node believes
  mutable absl::Mutex mu_;
  // By mountpoint (shared: the keeper works on layers outside mu_).
  std::map<std::string, std::shared_ptr<LazyLayer>> layers_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> indexing_ ABSL_GUARDED_BY(mu_);  // layer digests being indexed
  std::vector<std::thread> index_jobs_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stopping_{false};
  // CheckLocal's view of the layers' span reads (keeper thread only).
  uint64_t seen_reads_ = 0;
  absl::Time last_read_ = absl::Now();
  std::atomic<size_t> tree_checks_{0};  // CheckLocal's calls
  absl::Notification stop_keeper_;
  std::thread keeper_;  // Keep, when profiles or trees are on
};

}  // namespace clip

#endif  // CLIP_LAZY_LAZY_LAYERS_H_
