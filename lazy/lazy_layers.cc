#include "lazy/lazy_layers.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "index/span_source.h"

namespace clip {

LazyLayers::LazyLayers(const RegistryClient& registry, FuseServer& fuse, Options options)
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

LazyLayers::~LazyLayers() {
  stop_keeper_.Notify();
  if (keeper_.joinable()) keeper_.join();
  stopping_ = true;  // index jobs stop at their next read
  std::vector<std::thread> jobs;
  std::map<std::string, std::shared_ptr<LazyLayer>> layers;
  {
    absl::MutexLock lock(&mu_);
    jobs.swap(index_jobs_);
    layers.swap(layers_);
  }
  for (auto& j : jobs) j.join();
  for (auto& [mnt, layer] : layers) (void)layer->Close();  // (a tree job takes mu_ at its end)
}

std::shared_ptr<LazyLayer> LazyLayers::Find(const std::string& mountpoint) const {
  absl::MutexLock lock(&mu_);
  auto it = layers_.find(mountpoint);
  return it == layers_.end() ? nullptr : it->second;
}

bool LazyLayers::SpansShared(const Digest& digest, const LazyLayer* self) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [mnt, other] : layers_) {
    if (other.get() != self && other->digest() == digest && other->tree().empty()) return true;
  }
  return false;
}

size_t LazyLayers::tree_failures() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [mnt, layer] : layers_) n += layer->tree_failures();
  return n;
}

size_t LazyLayers::local() const {
  absl::MutexLock lock(&mu_);
  return static_cast<size_t>(std::count_if(
      layers_.begin(), layers_.end(), [](const auto& l) { return !l.second->tree().empty(); }));
}

std::optional<std::string> LazyLayers::LocalTree(const std::string& mountpoint) const {
  std::shared_ptr<LazyLayer> layer = Find(mountpoint);
  if (layer == nullptr || layer->tree().empty()) return std::nullopt;
  return layer->tree();
}

size_t LazyLayers::mounted() const {
  absl::MutexLock lock(&mu_);
  return layers_.size();
}

size_t LazyLayers::filled() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [mnt, layer] : layers_) n += layer->filled();
  return n;
}

LazyLayers::States LazyLayers::states() const {
  absl::MutexLock lock(&mu_);
  States st;
  for (const auto& [mnt, layer] : layers_) {
    if (!layer->tree().empty()) {
      ++st.local;
    } else if (layer->filling()) {
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

}  // namespace

void LazyLayers::IndexInBackground(const Reference& image, const Digest& layer) {
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

void LazyLayers::WaitIndexing() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](std::set<std::string>* s) { return s->empty(); }, &indexing_));
}

absl::StatusOr<bool> LazyLayers::Mount(const LayerRef& ref, const std::string& mountpoint) {
  const Reference& image = ref.image;
  const Digest& layer = ref.layer;
  // A layer mounted lazily before (restoring) has its pin beside its mountpoint: the
  // digest of the index it was mounted with.
  IndexQuery query{image, layer, ref.manifest, ref.restoring};
  const std::string pin_path = mountpoint + ".index";
  if (query.restoring) {
    if (absl::StatusOr<std::string> pin = ReadWholeFile(pin_path); pin.ok()) {
      absl::StatusOr<Digest> pinned = Digest::Parse(absl::StripAsciiWhitespace(*pin));
      if (pinned.ok()) query.pinned = *pinned;
    }
  }
  if (ref.manifest) query.bound_artifact = ref.bound_artifact;
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
  // The pin first: a daemon killed right after the mount restores this very index.
  if (absl::Status pinned = WriteFileAtomically(pin_path, index_digest.ToString() + "\n");
      !pinned.ok()) {
    Log(LogLevel::kWarning, "remote", pinned.message());
  }
  LazyLayer::Options lo;
  lo.tiers = options_.tiers;
  lo.passthrough = options_.passthrough;
  lo.passthrough_min_file_bytes = options_.passthrough_min_file_bytes;
  lo.before_tree_entry = options_.before_tree_entry;
  const std::string dir =
      options_.local_trees ? mountpoint.substr(0, mountpoint.rfind('/')) : std::string();
  auto lazy = std::make_shared<LazyLayer>(layer, *index, std::move(blob), dir, std::move(lo));
  CLIP_ASSIGN_OR_RETURN(bool fuse, lazy->Serve(fuse_, mountpoint));
  const std::string tree = lazy->tree();
  if (!fuse) {
    Log(LogLevel::kInfo, "remote",
        absl::StrCat("mounted ", layer.ToString(), " of ", image.ToString(),
                     " from its local tree ", tree, " (no FUSE: overlayfs reads it)"));
  } else {
    Log(LogLevel::kInfo, "remote",
        absl::StrCat("mounted ", layer.ToString(), " of ", image.ToString(), " lazily at ",
                     mountpoint, " (index ", trail.substr(trail.rfind("found in ") + 6), ", ",
                     (*index)->entries_size(), " entries, ", SpanCount(**index), " spans",
                     lazy->passthrough() ? ", passthrough once local" : "",
                     tree.empty() ? "" : "; reads from its local tree", ")"));
    if (options_.fill && tree.empty()) lazy->StartFill(*options_.fill, options_.fill_delay);
    // A mount taken over from a previous daemon serves a container that has started: its
    // reads are neither a start to record nor one to prepare for.
    if (!options_.profile_store.empty() && !lazy->adopted() && tree.empty()) {
      if (std::optional<index::v1::AccessProfile> profile = finder_.FindProfile(query, **index)) {
        if (options_.replay != nullptr) {
          std::vector<uint32_t> order(profile->spans().begin(), profile->spans().end());
          lazy->StartReplay(order, options_.replay, options_.replay_options);
          Log(LogLevel::kInfo, "remote",
              absl::StrCat("replaying the access profile of ", layer.ToString(), ": ", order.size(),
                           " spans in ", lazy->replay()->runs_queued.load(), " runs"));
        }
      } else {
        lazy->StartRecording();
      }
    }
  }
  absl::MutexLock lock(&mu_);
  layers_[mountpoint] = std::move(lazy);
  return true;
}

absl::Status LazyLayers::Unmount(const std::string& mountpoint) {
  std::shared_ptr<LazyLayer> layer;
  {
    absl::MutexLock lock(&mu_);
    auto it = layers_.find(mountpoint);
    if (it == layers_.end()) return absl::OkStatus();  // not mounted (e.g. restore failed)
    layer = std::move(it->second);
    layers_.erase(it);
  }
  // Unmounted before its readers went quiet: what they read is still a profile.
  if (std::shared_ptr<SpanAccessLog> rec = layer->EndRecording();
      rec != nullptr && !rec->spans().empty()) {
    SaveProfile(layer->digest(), *layer->index(), *rec);
  }
  const bool fuse = layer->fuse_mounted();
  absl::Status st = layer->Close();  // its tree write stops, its fill too, then the mount
  if (!fuse) {
    Log(LogLevel::kInfo, "remote",
        absl::StrCat("let go of ", layer->digest().ToString(), " at ", mountpoint, " (its tree)"));
    return absl::OkStatus();
  }
  Log(st.ok() ? LogLevel::kInfo : LogLevel::kWarning, "remote",
      absl::StrCat(st.ok() ? "unmounted " : "unmount failed: ", layer->digest().ToString(), " at ",
                   mountpoint, " (", layer->spans().origin_fetches(), " of ",
                   SpanCount(*layer->index()), " spans fetched from the registry while mounted)",
                   st.ok() ? "" : ": ", st.message()));
  return st;
}

std::shared_ptr<const ProfileReplay::Progress> LazyLayers::Replay(
    const std::string& mountpoint) const {
  std::shared_ptr<LazyLayer> layer = Find(mountpoint);
  return layer == nullptr ? nullptr : layer->replay();
}

void LazyLayers::SaveProfile(const Digest& layer, const index::v1::LayerIndex& index,
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

void LazyLayers::Keep() {
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

void LazyLayers::KeepProfiles() {
  std::vector<std::shared_ptr<LazyLayer>> layers;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [mnt, layer] : layers_) layers.push_back(layer);
  }
  const absl::Time now = absl::Now();
  for (const std::shared_ptr<LazyLayer>& layer : layers) {
    std::shared_ptr<const SpanAccessLog> log = layer->recording();
    if (log == nullptr) continue;
    const bool quiet = !log->spans().empty() && now - log->last_new() >= options_.profile_quiet;
    if (!quiet && now - log->started() < options_.profile_max) continue;
    std::shared_ptr<SpanAccessLog> ended = layer->EndRecording();
    if (ended != nullptr && !ended->spans().empty()) {
      SaveProfile(layer->digest(), *layer->index(), *ended);
    }
  }
}

std::optional<LayerUsage> LazyLayers::Usage(const std::string& mountpoint) const {
  std::shared_ptr<LazyLayer> layer = Find(mountpoint);
  if (layer == nullptr) return std::nullopt;
  const index::v1::LayerIndex& index = *layer->index();
  LayerUsage usage;
  usage.inodes = index.entries_size();
  if (std::optional<uint64_t> size = finder_.indexes().SizeOf(layer->digest())) {
    usage.index_bytes = static_cast<int64_t>(*size);
  }
  usage.tree = layer->tree();
  if (usage.tree.empty() && options_.tiers.disk != nullptr) {
    for (size_t s = 0; s < SpanCount(index); ++s) {
      SpanInfo span = GetSpanInfo(index, s);
      if (options_.tiers.disk->Contains(span.digest)) {
        usage.span_bytes += static_cast<int64_t>(span.size);
      }
    }
  }
  return usage;
}

void LazyLayers::CheckLocal() {
  ++tree_checks_;
  std::vector<std::shared_ptr<LazyLayer>> layers;
  uint64_t reads = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (const auto& [mnt, layer] : layers_) {
      layers.push_back(layer);
      reads += layer->spans().reads();
    }
  }
  const absl::Time now = absl::Now();
  // Local layers' FUSE mounts leave their mountpoints a little after the tree exists
  // (new containers got the tree since): only running containers still hold them.
  for (const auto& layer : layers) layer->DetachIfDue(now, options_.tree_quiet);
  if (reads != seen_reads_) {  // containers are reading: no tree now
    seen_reads_ = reads;
    last_read_ = now;
  }
  if (now - last_read_ < options_.tree_quiet) return;
  // One tree at a time, as containerd unpacks one layer at a time: trees written side by
  // side interleave their inodes and blocks on the disk (files in several extents, a
  // directory's inodes and small files far apart), and a new container's cold reads of
  // each tree pay for it.
  for (const auto& layer : layers) {
    if (layer->WritingTree()) return;
  }
  for (const auto& layer : layers) {
    if (stopping_) return;
    if (!layer->MayBecomeLocal(now) || !layer->AllSpansOnDisk()) continue;
    LazyLayer* self = layer.get();
    layer->StartTree([this, self] { return SpansShared(self->digest(), self); });
    return;
  }
}

}  // namespace clip
