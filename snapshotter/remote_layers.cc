#include "snapshotter/remote_layers.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "fs/layer_fs.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "index/span_inflater.h"
#include "index/span_source.h"
#include "lazy/layer_tree.h"
#include "snapshotter/snapshot_labels.h"

namespace clip {

RemoteLayers::DelayedFill::DelayedFill(std::shared_ptr<const TieredSpanSource> spans,
                                       BackgroundFill::Options options, absl::Duration delay)
    : fill_(std::move(spans), options) {
  thread_ = std::thread([this, delay] {
    if (cancel_.WaitForNotificationWithTimeout(delay)) return;
    fill_.Start();
    fill_.Wait();
    done_ = true;
  });
}

RemoteLayers::DelayedFill::~DelayedFill() {
  cancel_.Notify();
  fill_.Cancel();
  thread_.join();
}

bool RemoteLayers::DelayedFill::done() const { return done_; }

RemoteLayers::RemoteLayers(const RegistryClient& registry, FuseServer& fuse, Options options)
    : registry_(registry),
      fuse_(fuse),
      options_(std::move(options)),
      finder_(IndexFinder::Options{options_.index_trust, &registry_, options_.index_store,
                                   options_.profile_store, options_.remote_index,
                                   options_.metrics}) {
  if (!options_.profile_store.empty() || options_.local_trees) {
    keeper_ = std::thread([this] { Keep(); });
  }
}

RemoteLayers::~RemoteLayers() {
  stop_keeper_.Notify();
  if (keeper_.joinable()) keeper_.join();
  stopping_ = true;  // index jobs stop at their next read
  std::vector<std::thread> jobs;
  {
    absl::MutexLock lock(&mu_);
    jobs.swap(index_jobs_);
  }
  for (auto& j : jobs) j.join();
  std::vector<std::shared_ptr<TreeJob>> trees;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [mnt, layer] : layers_) {
      if (layer.tree_job == nullptr) continue;
      layer.tree_job->cancel = true;
      trees.push_back(layer.tree_job);
    }
  }
  for (auto& t : trees) t->thread.join();  // (a job takes mu_ at its end)
  absl::MutexLock lock(&mu_);
  for (auto& [mnt, layer] : layers_) {
    if (layer.replay != nullptr) layer.replay->Cancel();
    layer.fill.reset();
    if (layer.id) (void)fuse_.Unmount(*layer.id);
  }
  layers_.clear();
}

size_t RemoteLayers::local() const {
  absl::MutexLock lock(&mu_);
  return static_cast<size_t>(std::count_if(layers_.begin(), layers_.end(),
                                           [](const auto& l) { return !l.second.tree.empty(); }));
}

std::optional<std::string> RemoteLayers::LocalTree(const std::string& mountpoint) const {
  absl::MutexLock lock(&mu_);
  auto it = layers_.find(mountpoint);
  if (it == layers_.end() || it->second.tree.empty()) return std::nullopt;
  return it->second.tree;
}

size_t RemoteLayers::mounted() const {
  absl::MutexLock lock(&mu_);
  return layers_.size();
}

size_t RemoteLayers::filled() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [mnt, layer] : layers_) n += layer.fill != nullptr && layer.fill->done();
  return n;
}

RemoteLayers::States RemoteLayers::states() const {
  absl::MutexLock lock(&mu_);
  States st;
  for (const auto& [mnt, layer] : layers_) {
    if (!layer.tree.empty()) {
      ++st.local;
    } else if (layer.fill != nullptr && !layer.fill->done()) {
      ++st.filling;
    } else {
      ++st.lazy;
    }
  }
  return st;
}

namespace {

// A blob reader that fails once `stop` is set, so a long index build ends at shutdown.
class StoppableReader final : public BlobReader {
 public:
  StoppableReader(const BlobReader& inner, const std::atomic<bool>& stop)
      : inner_(inner), stop_(stop) {}
  absl::StatusOr<size_t> ReadAt(uint64_t offset, absl::Span<char> dst) const override {
    if (stop_) return absl::CancelledError("shutting down");
    return inner_.ReadAt(offset, dst);
  }
  absl::StatusOr<uint64_t> Size() const override { return inner_.Size(); }

 private:
  const BlobReader& inner_;
  const std::atomic<bool>& stop_;
};

// The mean size of the layer's regular files (0 without any).
uint64_t AverageFileSize(const index::v1::LayerIndex& index) {
  uint64_t files = 0, bytes = 0;
  for (const auto& e : index.entries()) {
    if (e.type() != index::v1::REGULAR) continue;
    ++files;
    bytes += e.size();
  }
  return files == 0 ? 0 : bytes / files;
}

// A tree that could not be written (a full disk) is tried again this much later.
constexpr absl::Duration kTreeRetry = absl::Minutes(1);

}  // namespace

void RemoteLayers::IndexInBackground(const Reference& image, const Digest& layer) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || !indexing_.insert(layer.ToString()).second) return;
  index_jobs_.emplace_back([this, image, layer] {
    absl::Status st = [&]() -> absl::Status {
      CLIP_ASSIGN_OR_RETURN(auto blob, RegistryBlobReader::Open(registry_, image, layer));
      StoppableReader reader(*blob, stopping_);
      CLIP_ASSIGN_OR_RETURN(index::v1::LayerIndex index,
                            BuildLayerIndex(reader, options_.index_options));
      if (index.layer_digest() != layer.ToString()) {
        return absl::DataLossError(absl::StrCat("indexed as ", index.layer_digest()));
      }
      CLIP_ASSIGN_OR_RETURN(std::string encoded, EncodeCheckedIndex(index));
      finder_.KeepBuilt(layer, encoded);
      return absl::OkStatus();
    }();
    Log(st.ok() ? LogLevel::kInfo : LogLevel::kWarning, "remote",
        st.ok() ? absl::StrCat("indexed ", layer.ToString(), " on first use")
                : absl::StrCat("indexing ", layer.ToString(), " on first use: ", st.message()));
    absl::MutexLock done(&mu_);
    indexing_.erase(layer.ToString());
  });
}

void RemoteLayers::WaitIndexing() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](std::set<std::string>* s) { return s->empty(); }, &indexing_));
}

absl::StatusOr<bool> RemoteLayers::Mount(const Labels& labels, const std::string& mountpoint) {
  auto image_it = labels.find(kImageRefLabel);
  auto layer_it = labels.find(kLayerDigestLabel);
  if (image_it == labels.end() || layer_it == labels.end()) {
    auto ref = labels.find(kSnapshotRefLabel);
    Log(LogLevel::kInfo, "remote",
        absl::StrCat(
            "layer ", ref == labels.end() ? "?" : ref->second,
            " is not lazy: containerd sent no image/layer labels (", kImageRefLabel, ", ",
            kLayerDigestLabel,
            "; containerd 1.6/1.7: CRI needs disable_snapshot_annotations = false, ctr needs "
            "clipctl pull; 2.x: the proxy plugin needs exports."
            "enable_remote_snapshot_annotations = \"true\" - deploy/"
            "containerd-config-v3.toml)"));
    return false;
  }
  CLIP_ASSIGN_OR_RETURN(Reference image, Reference::Parse(image_it->second));
  CLIP_ASSIGN_OR_RETURN(Digest layer, Digest::Parse(layer_it->second));
  std::optional<Digest> manifest;
  if (auto m = labels.find(kManifestDigestLabel); m != labels.end()) {
    CLIP_ASSIGN_OR_RETURN(manifest, Digest::Parse(m->second));
  }
  // A snapshot mounted lazily before comes back with clip's mark among its labels, and
  // its pin beside its mountpoint: the digest of the index it was mounted with.
  IndexQuery query{image, layer, manifest, labels.count(kRemoteLabel) > 0};
  const std::string pin_path = mountpoint + ".index";
  if (query.restoring) {
    if (absl::StatusOr<std::string> pin = ReadWholeFile(pin_path); pin.ok()) {
      absl::StatusOr<Digest> pinned = Digest::Parse(absl::StripAsciiWhitespace(*pin));
      if (pinned.ok()) query.pinned = *pinned;
    }
  }
  if (auto a = labels.find(kBoundArtifactLabel); a != labels.end() && manifest) {
    CLIP_ASSIGN_OR_RETURN(query.bound_artifact, Digest::Parse(a->second));
  }
  std::string trail;
  Digest index_digest;
  CLIP_ASSIGN_OR_RETURN(auto index, finder_.FindIndex(query, &trail, &index_digest));
  if (!index) {
    const bool indexing = options_.index_on_first_use;
    Log(LogLevel::kInfo, "remote",
        absl::StrCat("layer ", layer.ToString(), " of ", image.ToString(),
                     " is not lazy: no index (", trail, "); pulled normally",
                     indexing ? ", and indexed in the background for next time" : ""));
    if (indexing) IndexInBackground(image, layer);
    return false;
  }
  auto blob =
      std::make_unique<RegistryBlobReader>(registry_, image, layer, (*index)->compressed_size());
  auto spans = std::make_shared<TieredSpanSource>(
      *index, std::make_shared<SpanInflater>(*index, *blob), options_.tiers);
  // The pin first: a daemon killed right after the mount restores this very index.
  if (absl::Status pinned = WriteFileAtomically(pin_path, index_digest.ToString() + "\n");
      !pinned.ok()) {
    Log(LogLevel::kWarning, "remote", pinned.message());
  }
  // Made local before (a restart, the same layer pulled again): its tree is the layer.
  std::string tree;
  if (options_.local_trees) {
    const std::string dir = mountpoint.substr(0, mountpoint.rfind('/'));
    (void)RemoveUnfinishedTrees(dir);  // a write a crash interrupted starts again later
    struct stat st;
    if (stat((dir + "/tree").c_str(), &st) == 0 && S_ISDIR(st.st_mode)) tree = dir + "/tree";
  }
  if (!tree.empty() && !fuse_.Offered(mountpoint)) {
    Log(LogLevel::kInfo, "remote",
        absl::StrCat("mounted ", layer.ToString(), " of ", image.ToString(),
                     " from its local tree ", tree, " (no FUSE: overlayfs reads it)"));
    absl::MutexLock lock(&mu_);
    layers_[mountpoint] = Layer{std::nullopt, layer,   *index,  std::move(blob), spans,  nullptr,
                                tree,         nullptr, nullptr, nullptr,         nullptr};
    return true;
  }
  auto fs = std::make_shared<LayerFs>(*index, spans);
  if (!tree.empty()) {
    // A container started before still reads through its FUSE mount: from the tree.
    if (absl::Status st = fs->UseTree(tree); !st.ok()) {
      Log(LogLevel::kWarning, "remote", st.message());
      tree.clear();
    }
  }
  const bool passthrough =
      options_.passthrough && AverageFileSize(**index) >= options_.passthrough_min_file_bytes;
  CLIP_ASSIGN_OR_RETURN(FuseServer::MountId id, fuse_.Mount(mountpoint, fs, passthrough));
  Log(LogLevel::kInfo, "remote",
      absl::StrCat("mounted ", layer.ToString(), " of ", image.ToString(), " lazily at ",
                   mountpoint, " (index ", trail.substr(trail.rfind("found in ") + 6), ", ",
                   (*index)->entries_size(), " entries, ", SpanCount(**index), " spans",
                   tree.empty() ? "" : "; reads from its local tree", ")"));
  std::unique_ptr<DelayedFill> fill;
  if (options_.fill && tree.empty()) {
    fill = std::make_unique<DelayedFill>(spans, *options_.fill, options_.fill_delay);
  }
  std::shared_ptr<SpanAccessLog> recording;
  std::shared_ptr<ProfileReplay::Progress> replay;
  // A mount taken over from a previous daemon serves a container that has started: its
  // reads are neither a start to record nor one to prepare for.
  if (!options_.profile_store.empty() && !fuse_.IsAdopted(id) && tree.empty()) {
    if (std::optional<index::v1::AccessProfile> profile = finder_.FindProfile(query, **index)) {
      if (options_.replay != nullptr) {
        std::vector<uint32_t> order(profile->spans().begin(), profile->spans().end());
        replay = ProfileReplay::Start(spans, order, options_.replay, options_.replay_options);
        Log(LogLevel::kInfo, "remote",
            absl::StrCat("replaying the access profile of ", layer.ToString(), ": ", order.size(),
                         " spans in ", replay->runs_queued.load(), " runs"));
      }
    } else {
      recording = std::make_shared<SpanAccessLog>();
      spans->SetAccessLog(recording);
    }
  }
  absl::MutexLock lock(&mu_);
  Layer& l = layers_[mountpoint] = Layer{id,   layer,   *index,          std::move(blob), spans, fs,
                                         tree, nullptr, std::move(fill), recording,       replay};
  if (!tree.empty()) l.local_since = absl::Now();
  return true;
}

absl::Status RemoteLayers::Unmount(const std::string& mountpoint) {
  Layer layer;
  {
    absl::MutexLock lock(&mu_);
    auto it = layers_.find(mountpoint);
    if (it == layers_.end()) return absl::OkStatus();  // not mounted (e.g. restore failed)
    // Its snapshot is going, the tree too: a write in progress stops (cancelled before
    // the layer leaves the map, so no one sees it gone with its write still going on).
    if (it->second.tree_job != nullptr) it->second.tree_job->cancel = true;
    layer = std::move(it->second);
    layers_.erase(it);
  }
  if (layer.tree_job != nullptr) layer.tree_job->thread.join();
  if (layer.replay != nullptr) layer.replay->Cancel();
  if (layer.recording != nullptr) {  // unmounted before its readers went quiet
    layer.spans->SetAccessLog(nullptr);
    if (!layer.recording->spans().empty())
      SaveProfile(layer.digest, *layer.index, *layer.recording);
  }
  layer.fill.reset();  // cancel before the mount goes
  if (!layer.id) {
    umount2(mountpoint.c_str(), MNT_DETACH);  // the tree bound there by an earlier daemon
    Log(LogLevel::kInfo, "remote",
        absl::StrCat("let go of ", layer.digest.ToString(), " at ", mountpoint, " (its tree)"));
    return absl::OkStatus();
  }
  absl::Status st = fuse_.Unmount(*layer.id);
  Log(st.ok() ? LogLevel::kInfo : LogLevel::kWarning, "remote",
      absl::StrCat(st.ok() ? "unmounted " : "unmount failed: ", layer.digest.ToString(), " at ",
                   mountpoint, " (", layer.spans->origin_fetches(), " of ", SpanCount(*layer.index),
                   " spans fetched from the registry while mounted)", st.ok() ? "" : ": ",
                   st.message()));
  return st;
}

std::shared_ptr<const ProfileReplay::Progress> RemoteLayers::Replay(
    const std::string& mountpoint) const {
  absl::MutexLock lock(&mu_);
  auto it = layers_.find(mountpoint);
  return it == layers_.end() ? nullptr : it->second.replay;
}

void RemoteLayers::SaveProfile(const Digest& layer, const index::v1::LayerIndex& index,
                               const SpanAccessLog& log) {
  index::v1::AccessProfile profile = MakeProfile(index, log.spans());
  profile.set_recorded_unix_seconds(static_cast<uint64_t>(absl::ToUnixSeconds(absl::Now())));
  profile.set_recorded_millis(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(log.last_new() - log.started())));
  finder_.KeepRecorded(layer, EncodeProfile(profile));
  uint64_t bytes = 0;
  for (uint32_t s : profile.spans()) bytes += GetSpanInfo(index, s).size;
  Log(LogLevel::kInfo, "remote",
      absl::StrCat("recorded the access profile of ", layer.ToString(), ": ", profile.spans_size(),
                   " of ", SpanCount(index), " spans (", bytes, " bytes) read in the first ",
                   profile.recorded_millis(), " ms"));
}

void RemoteLayers::Keep() {
  absl::Duration tick = options_.tree_check;
  if (!options_.profile_store.empty()) {
    tick = std::min(tick, std::min(absl::Milliseconds(250),
                                   std::max(absl::Milliseconds(10), options_.profile_quiet / 4)));
  }
  absl::Time next_check = absl::Now() + options_.tree_check;
  while (!stop_keeper_.WaitForNotificationWithTimeout(tick)) {
    if (!options_.profile_store.empty()) KeepProfiles();
    if (options_.local_trees && absl::Now() >= next_check) {
      CheckLocal();
      next_check = absl::Now() + options_.tree_check;
    }
  }
}

void RemoteLayers::KeepProfiles() {
  {
    struct Due {
      Digest digest;
      std::shared_ptr<const index::v1::LayerIndex> index;
      std::shared_ptr<SpanAccessLog> log;
    };
    std::vector<Due> due;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = absl::Now();
      for (auto& [mnt, layer] : layers_) {
        if (layer.recording == nullptr) continue;
        const SpanAccessLog& log = *layer.recording;
        const bool quiet = !log.spans().empty() && now - log.last_new() >= options_.profile_quiet;
        if (!quiet && now - log.started() < options_.profile_max) continue;
        layer.spans->SetAccessLog(nullptr);
        due.push_back({layer.digest, layer.index, std::move(layer.recording)});
        layer.recording = nullptr;
      }
    }
    for (const Due& d : due) {
      if (!d.log->spans().empty()) SaveProfile(d.digest, *d.index, *d.log);
    }
  }
}

std::optional<SnapshotUsage> RemoteLayers::Usage(const std::string& mountpoint) const {
  std::shared_ptr<const index::v1::LayerIndex> index;
  Digest digest;
  std::string tree;
  {
    absl::MutexLock lock(&mu_);
    auto it = layers_.find(mountpoint);
    if (it == layers_.end()) return std::nullopt;
    index = it->second.index;
    digest = it->second.digest;
    tree = it->second.tree;
  }
  SnapshotUsage usage;
  usage.inodes = index->entries_size();
  if (std::optional<uint64_t> size = finder_.indexes().SizeOf(digest)) {
    usage.size += static_cast<int64_t>(*size);
  }
  if (!tree.empty()) {  // the layer's files, as overlayfs's unpack would hold them
    if (absl::StatusOr<SnapshotUsage> t = DiskUsage(tree); t.ok()) usage.size += t->size;
    return usage;
  }
  if (options_.tiers.disk != nullptr) {
    for (size_t s = 0; s < SpanCount(*index); ++s) {
      SpanInfo span = GetSpanInfo(*index, s);
      if (options_.tiers.disk->Contains(span.digest)) usage.size += static_cast<int64_t>(span.size);
    }
  }
  return usage;
}

void RemoteLayers::CheckLocal() {
  struct Candidate {
    std::string mountpoint;
    std::shared_ptr<const index::v1::LayerIndex> index;
  };
  std::vector<Candidate> candidates;
  struct Detach {
    FuseServer::MountId id;
    std::string tree;
  };
  std::vector<Detach> detach;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    const absl::Time now = absl::Now();
    // Local layers' FUSE mounts leave their mountpoints a little after the tree exists
    // (new containers got the tree since): only running containers still hold them.
    for (auto& [mnt, layer] : layers_) {
      if (layer.tree.empty() || !layer.id || layer.detached) continue;
      if (now - layer.local_since < options_.tree_quiet) continue;
      layer.detached = true;
      detach.push_back({*layer.id, layer.tree});
    }
  }
  for (const Detach& d : detach) {
    if (absl::Status st = fuse_.DetachFrom(d.id, d.tree); !st.ok()) {
      Log(LogLevel::kWarning, "remote", st.message());
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    const absl::Time now = absl::Now();
    uint64_t reads = 0;
    for (const auto& [mnt, layer] : layers_) reads += layer.spans->reads();
    if (reads != seen_reads_) {  // containers are reading: no tree now
      seen_reads_ = reads;
      last_read_ = now;
    }
    if (now - last_read_ < options_.tree_quiet) return;
    for (auto& [mnt, layer] : layers_) {
      if (!layer.tree.empty()) continue;
      if (layer.tree_job != nullptr) {
        if (!layer.tree_job->failed || now - layer.tree_job->failed_at < kTreeRetry) continue;
        layer.tree_job->thread.join();  // it has ended
        layer.tree_job = nullptr;
      }
      candidates.push_back({mnt, layer.index});
    }
  }
  if (options_.tiers.disk == nullptr) return;
  for (const Candidate& c : candidates) {
    bool all = true;
    for (size_t s = 0; s < SpanCount(*c.index) && all; ++s) {
      all = options_.tiers.disk->Contains(GetSpanInfo(*c.index, s).digest);
    }
    if (!all) continue;
    absl::MutexLock lock(&mu_);
    auto it = layers_.find(c.mountpoint);
    if (it == layers_.end() || it->second.tree_job != nullptr || stopping_) continue;
    Layer& layer = it->second;
    auto job = std::make_shared<TreeJob>();
    job->thread = std::thread([this, mnt = c.mountpoint, digest = layer.digest, index = layer.index,
                               blob = layer.blob.get(),
                               j = job.get()] { MakeLocal(mnt, digest, index, blob, *j); });
    layer.tree_job = std::move(job);
  }
}

void RemoteLayers::MakeLocal(const std::string& mountpoint, const Digest& digest,
                             std::shared_ptr<const index::v1::LayerIndex> index,
                             const BlobReader* blob, TreeJob& job) {
  const std::string tree = mountpoint.substr(0, mountpoint.rfind('/')) + "/tree";
  const absl::Time start = absl::Now();
  // Its own span source over the same tiers: the spans on disk, verified, and outside
  // the layer's access log (the writer's reads are not a container's).
  LayerFs fs(index, std::make_shared<TieredSpanSource>(
                        index, std::make_shared<SpanInflater>(index, *blob), options_.tiers));
  LayerTreeOptions o;
  o.before_entry = [this, &job](const std::string& path) {
    if (options_.before_tree_entry) options_.before_tree_entry(path);
    return job.cancel ? absl::CancelledError("the layer is unmounted") : absl::OkStatus();
  };
  absl::Status written = WriteLayerTree(fs, tree, o);
  if (written.code() == absl::StatusCode::kAlreadyExists) written = absl::OkStatus();
  if (!written.ok()) {
    if (!job.cancel) {
      Log(LogLevel::kWarning, "remote",
          absl::StrCat("layer ", digest.ToString(), " stays lazy: its tree could not be written (",
                       written.message(), "); tried again later"));
    }
    if (!job.cancel) ++tree_failures_;
    job.failed_at = absl::Now();
    job.failed = true;  // CheckLocal starts another one a minute later
    return;
  }
  bool shared = false;  // another mount of the same layer still reads these spans
  {
    absl::MutexLock lock(&mu_);
    auto it = layers_.find(mountpoint);
    if (it == layers_.end()) return;
    Layer& layer = it->second;
    if (layer.fs != nullptr) {
      if (absl::Status st = layer.fs->UseTree(tree); !st.ok()) {
        Log(LogLevel::kWarning, "remote", st.message());
        return;
      }
    }
    layer.tree = tree;
    layer.local_since = absl::Now();
    for (const auto& [mnt, other] : layers_) {
      shared |= mnt != mountpoint && other.digest == digest && other.tree.empty();
    }
  }
  size_t dropped = 0;
  if (!shared) {  // the data is the tree's now: the caches' copies go (not the fleet's)
    for (size_t s = 0; s < SpanCount(*index); ++s) {
      const Digest span = GetSpanInfo(*index, s).digest;
      if (options_.tiers.memory != nullptr) (void)options_.tiers.memory->Remove(span);
      if (options_.tiers.disk != nullptr) dropped += options_.tiers.disk->Remove(span).ok();
    }
  }
  Log(LogLevel::kInfo, "remote",
      absl::StrCat("layer ", digest.ToString(), " is local: written as a tree at ", tree, " in ",
                   absl::FormatDuration(absl::Now() - start),
                   "; new containers read it through overlayfs, running ones through FUSE from "
                   "the tree; ",
                   dropped, " of ", SpanCount(*index), " spans left the disk cache"));
}

}  // namespace clip
