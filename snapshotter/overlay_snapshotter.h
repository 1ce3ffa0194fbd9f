// OverlaySnapshotter: clip's snapshotter core with the semantics of containerd's own
// overlayfs snapshotter. Every image without a clip index goes through it, and the
// lazy path (remote snapshots) builds on it.
//
// Layout under the root: `metadata.db` (MetadataStore), `snapshots/<id>/fs` (the
// snapshot's upper directory) and `snapshots/<id>/work` (overlay workdir, active only).
// A directory is created under a temporary name (`new-<pid>-*`) and renamed to its id
// inside the metadata transaction, before COMMIT; a removed snapshot's record is deleted
// first and its directory renamed to `<id>-rm` and deleted after the COMMIT. A crash at
// any point leaves either the old or the new state (a record always has its directory);
// leftovers are directories without a record, which Cleanup removes (a `new-` one only
// once its creating process is gone).
//
// Mounts: an active snapshot without parents is a rw bind mount of its fs; with parents
// an overlay mount `lowerdir=` (parents, top first), `upperdir=`, `workdir=`. A view of
// one parent is a ro bind mount of it; of several, a ro overlay of lowerdirs.
//
//   CLIP_ASSIGN_OR_RETURN(auto s, OverlaySnapshotter::Open("/var/lib/containerd-clip-grpc"));
//   CLIP_ASSIGN_OR_RETURN(auto mounts, s->Prepare("extract-1", "", {}));
//
// Thread safety: safe for concurrent use (the store serialises transactions).
#ifndef CLIP_SNAPSHOTTER_OVERLAY_SNAPSHOTTER_H_
#define CLIP_SNAPSHOTTER_OVERLAY_SNAPSHOTTER_H_

#include <memory>
#include <string>

#include "snapshotter/metadata_store.h"
#include "snapshotter/snapshotter.h"

namespace clip {

// Lazy ("remote") layers. On Prepare with `containerd.io/snapshot.ref`, the snapshotter
// asks the hook to mount the layer the labels describe; when it can (an index exists),
// the layer becomes a committed snapshot named by the ref, marked with kRemoteLabel,
// and Prepare answers AlreadyExists, so containerd never downloads it. On start, every
// remote snapshot is mounted again from its labels. Implemented by RemoteLayers.
class RemoteLayerHook {
 public:
  virtual ~RemoteLayerHook() = default;
  // true: mounted at `mountpoint`; false: not lazy (ordinary path).
  virtual absl::StatusOr<bool> Mount(const Labels& labels, const std::string& mountpoint) = 0;
  virtual absl::Status Unmount(const std::string& mountpoint) = 0;
  // What the layer mounted at `mountpoint` really holds on this node (its index and
  // the span bytes cached on disk); nullopt when nothing is mounted there.
  virtual std::optional<SnapshotUsage> Usage(const std::string& mountpoint) const {
    (void)mountpoint;
    return std::nullopt;
  }
  // The layer at `mountpoint` as a plain directory tree on this node, when it is one:
  // overlayfs reads that instead of the mount (nullopt: the mount).
  virtual std::optional<std::string> LocalTree(const std::string& mountpoint) const {
    (void)mountpoint;
    return std::nullopt;
  }
};

class OverlaySnapshotter final : public Snapshotter {
 public:
  // `remote` (optional) must outlive the snapshotter.
  static absl::StatusOr<std::unique_ptr<OverlaySnapshotter>> Open(
      const std::string& root, RemoteLayerHook* remote = nullptr);

  absl::StatusOr<SnapshotInfo> Stat(const std::string& key) override;
  absl::StatusOr<SnapshotInfo> Update(const SnapshotInfo& info,
                                      const std::vector<std::string>& paths) override;
  absl::StatusOr<SnapshotUsage> Usage(const std::string& key) override;
  absl::StatusOr<std::vector<MountSpec>> Mounts(const std::string& key) override;
  absl::StatusOr<std::vector<MountSpec>> Prepare(const std::string& key, const std::string& parent,
                                                 const Labels& labels) override;
  absl::StatusOr<std::vector<MountSpec>> View(const std::string& key, const std::string& parent,
                                              const Labels& labels) override;
  absl::Status Commit(const std::string& name, const std::string& key,
                      const Labels& labels) override;
  absl::Status Remove(const std::string& key) override;
  absl::Status Walk(const std::vector<std::string>& filters,
                    const std::function<absl::Status(const SnapshotInfo&)>& fn) override;
  absl::Status Cleanup() override;

  const std::string& root() const { return root_; }
  std::string SnapshotDir(int64_t id) const;

 private:
  OverlaySnapshotter(std::string root, std::unique_ptr<MetadataStore> store,
                     RemoteLayerHook* remote)
      : root_(std::move(root)), store_(std::move(store)), remote_(remote) {}
  // kAlreadyExists when the layer was mounted lazily; OK when it is not lazy.
  absl::Status TryRemote(const std::string& parent, const Labels& labels);
  void RestoreRemote();
  absl::StatusOr<std::vector<MountSpec>> Create(SnapshotKind kind, const std::string& key,
                                                const std::string& parent, const Labels& labels);
  // Mounts for `record`, whose parent chain is resolved inside `txn`.
  absl::StatusOr<std::vector<MountSpec>> MountsFor(MetadataStore::Txn& txn,
                                                   const SnapshotRecord& record);

  const std::string root_;
  std::unique_ptr<MetadataStore> store_;
  RemoteLayerHook* remote_;
};

// Bytes (allocated blocks) and inodes under `dir`, hardlinks counted once.
absl::StatusOr<SnapshotUsage> DiskUsage(const std::string& dir);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_OVERLAY_SNAPSHOTTER_H_
