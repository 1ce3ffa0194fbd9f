// LazyLayer: the life of one layer served lazily, from its index to its tree - what the
// daemon opens for each lazily mounted snapshot (snapshotter/remote_layers.h, which
// finds and trusts the index with IndexFinder and decides when) and `clipctl mount`
// opens for one layer:
//   - its spans: read on first use from its blob (registry or file), inflated from the
//     nearest checkpoint, verified, through the cache tiers (TieredSpanSource);
//   - its filesystem (LayerFs) and FUSE mount (FuseServer): FUSE passthrough on the
//     mounts of layers whose regular files average at least passthrough_min_file_bytes
//     (there every open costs a round trip, worth it only for large files);
//   - background fill (after a delay), its access profile recorded or replayed;
//   - completion: once every span is on disk, its tree (`<dir>/tree`, layer_tree.h) is
//     written by a job of its own, from verified spans; the mount reads from the tree,
//     the spans leave the caches (unless another layer object of the same digest still
//     reads them), and a while later the FUSE mount leaves its mountpoint (the tree is
//     bound there), served until its last running container stops (FuseServer::
//     DetachFrom);
//   - a layer whose tree exists when it is opened is served by the tree alone (no FUSE),
//     unless the FUSE server offers a live connection of its mountpoint (a container
//     started before a restart): then that is taken over and reads the tree.
//
//   LazyLayer layer(digest, index, std::move(blob), dir, options);
//   CLIP_ASSIGN_OR_RETURN(bool fuse, layer.Serve(fuse_server, dir + "/fs"));
//   layer.StartFill(fill_options, absl::Seconds(10));
//   ...  // periodically: if (layer.MayBecomeLocal(now) && layer.AllSpansOnDisk())
//   layer.StartTree(...) layer.Close();  // or the destructor
//
// Thread safety: safe for concurrent use; Close (and the destructor) must not run
// beside another call on the same object. The tree job calls `shared` (StartTree)
// without holding any lock of the layer's.
#ifndef CLIP_LAZY_LAZY_LAYER_H_
#define CLIP_LAZY_LAZY_LAYER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "clip/index/v1/index.pb.h"
#include "common/blob_reader.h"
#include "common/digest.h"
#include "fs/fuse_server.h"
#include "fs/layer_fs.h"
#include "index/access_profile.h"
#include "lazy/background_fill.h"
#include "lazy/profile_replay.h"
#include "lazy/tiered_span_source.h"

namespace clip {

class LazyLayer {
 public:
  struct Options {
    CacheTiers tiers;                                 // shared by all layers
    bool passthrough = false;                         // FUSE passthrough (above)
    uint64_t passthrough_min_file_bytes = 256 << 10;  // ... on mounts of such layers
    absl::Duration tree_retry = absl::Minutes(1);     // after a failed tree write
    // Tests: called with each entry's path before the tree writer writes it.
    std::function<void(const std::string&)> before_tree_entry;
  };
  // The layer `digest` with `index`, read from `blob`; its tree lives at `<dir>/tree`
  // (empty `dir`: never a tree).
  LazyLayer(Digest digest, std::shared_ptr<const index::v1::LayerIndex> index,
            std::unique_ptr<BlobReader> blob, std::string dir, Options options);
  ~LazyLayer();  // Close()
  LazyLayer(const LazyLayer&) = delete;
  LazyLayer& operator=(const LazyLayer&) = delete;

  // Serves the layer at `mountpoint`: true through FUSE (a new mount, or the live
  // connection `fuse` offers, reading the tree if there is one), false by its tree alone
  // (it has one, and no connection is offered: overlayfs reads the tree). An unfinished
  // tree a crash left is cleared first.
  absl::StatusOr<bool> Serve(FuseServer& fuse, const std::string& mountpoint);
  // Background fill of every span, after `delay` unless closed first (no-op once local).
  void StartFill(const BackgroundFill::Options& options, absl::Duration delay);
  // Records which spans its readers ask for, from now on.
  void StartRecording();
  // Ends the recording (null if none): what was read.
  std::shared_ptr<SpanAccessLog> EndRecording();
  std::shared_ptr<const SpanAccessLog> recording() const;
  // Fetches these spans at once, in parallel runs on `pool` (cancelled by Close).
  void StartReplay(const std::vector<uint32_t>& order, ThreadPool* pool,
                   const ProfileReplay::Options& options);
  std::shared_ptr<const ProfileReplay::Progress> replay() const;

  // Completion. True if a tree job may start now: no tree, none running, and the last
  // failure (if any) older than tree_retry.
  bool MayBecomeLocal(absl::Time now);
  // A tree job is running (started, neither written nor failed yet).
  bool WritingTree() const;
  // Every span is in the disk tier (stats each: call when reads are quiet).
  bool AllSpansOnDisk() const;
  // Writes the tree in a job of its own; on success the mount reads from it and the
  // spans leave the caches unless `shared()` (another object of this digest still reads
  // them). A failure (a full disk) leaves the layer lazy, logged; tree_failures() counts.
  void StartTree(std::function<bool()> shared);
  // `after` since the tree exists, the FUSE mount leaves its mountpoint for the tree
  // (FuseServer::DetachFrom), once; true if it did now.
  bool DetachIfDue(absl::Time now, absl::Duration after);

  // Stops the jobs (a tree write in progress is cancelled, its leftovers removed),
  // saves nothing, and unmounts the FUSE mount. Idempotent.
  absl::Status Close();

  const Digest& digest() const { return digest_; }
  const std::shared_ptr<const index::v1::LayerIndex>& index() const { return index_; }
  const TieredSpanSource& spans() const { return *spans_; }
  // Its tree once written or found (empty: none).
  std::string tree() const;
  bool fuse_mounted() const { return id_.has_value(); }
  // Its FUSE mount (none: its tree alone, or not served yet).
  std::optional<FuseServer::MountId> mount_id() const { return id_; }
  bool adopted() const { return adopted_; }
  bool passthrough() const { return passthrough_; }
  // Background fill running (not done).
  bool filling() const;
  bool filled() const;
  size_t tree_failures() const { return tree_failures_; }

 private:
  // A fill that starts after a delay unless cancelled first.
  class DelayedFill {
   public:
    DelayedFill(std::shared_ptr<const TieredSpanSource> spans, BackgroundFill::Options options,
                absl::Duration delay);
    ~DelayedFill();  // cancels and joins
    bool done() const { return done_; }

   private:
    absl::Notification cancel_;
    BackgroundFill fill_;
    std::atomic<bool> done_{false};
    std::thread thread_;
  };
  struct TreeJob {
    std::atomic<bool> cancel{false};
    std::atomic<bool> failed{false};  // ended without a tree (at failed_at)
    absl::Time failed_at;
    std::thread thread;
  };
  void MakeLocal(TreeJob& job, const std::function<bool()>& shared);
  // A span inflater over the blob that keeps the blob alive as long as it lives.
  std::shared_ptr<const SpanSource> Inflater() const;

  const Digest digest_;
  const std::shared_ptr<const index::v1::LayerIndex> index_;
  // Shared with the span sources' inflaters (Inflater): a readahead that holds a source
  // past the layer's end still reads a live blob.
  const std::shared_ptr<const BlobReader> blob_;
  const std::string dir_;
  const Options options_;
  const std::shared_ptr<TieredSpanSource> spans_;
  FuseServer* fuse_ = nullptr;             // set by Serve
  std::string mountpoint_;                 // set by Serve
  std::optional<FuseServer::MountId> id_;  // set by Serve (none: its tree alone)
  // Serializes DetachFrom and Unmount of the mount (FuseServer frees it on Unmount).
  absl::Mutex mount_mu_;
  std::shared_ptr<LayerFs> fs_;  // what its FUSE mount serves (null: none)
  bool adopted_ = false;
  bool passthrough_ = false;
  std::atomic<size_t> tree_failures_{0};
  mutable absl::Mutex mu_;
  std::string tree_ ABSL_GUARDED_BY(mu_);
  absl::Time local_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<TreeJob> tree_job_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<DelayedFill> fill_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<SpanAccessLog> recording_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<ProfileReplay::Progress> replay_ ABSL_GUARDED_BY(mu_);
};

// The mean size of the layer's regular files (0 without any).
uint64_t AverageFileSize(const index::v1::LayerIndex& index);

}  // namespace clip

#endif  // CLIP_LAZY_LAZY_LAYER_H_
