#include "lazy/lazy_layer.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "fs/mount_stack.h"
#include "index/span_inflater.h"
#include "index/span_source.h"
#include "lazy/layer_tree.h"

namespace clip {

uint64_t AverageFileSize(const index::v1::LayerIndex& index) {
  uint64_t files = 0, bytes = 0;
  for (const auto& e : index.entries()) {
    if (e.type() != index::v1::REGULAR) continue;
    ++files;
    bytes += e.size();
  }
  return files == 0 ? 0 : bytes / files;
}

LazyLayer::DelayedFill::DelayedFill(std::shared_ptr<const TieredSpanSource> spans,
                                    BackgroundFill::Options options, absl::Duration delay)
    : fill_(std::move(spans), options) {
  thread_ = std::thread([this, delay] {
    if (cancel_.WaitForNotificationWithTimeout(delay)) return;
    fill_.Start();
    fill_.Wait();
    done_ = true;
  });
}

LazyLayer::DelayedFill::~DelayedFill() {
  cancel_.Notify();
  fill_.Cancel();
  thread_.join();
}

LazyLayer::LazyLayer(Digest digest, std::shared_ptr<const index::v1::LayerIndex> index,
                     std::unique_ptr<BlobReader> blob, std::string dir, Options options)
    : digest_(std::move(digest)),
      index_(std::move(index)),
      blob_(std::move(blob)),
      dir_(std::move(dir)),
      options_(std::move(options)),
      spans_(std::make_shared<TieredSpanSource>(index_, Inflater(), options_.tiers)) {}

std::shared_ptr<const SpanSource> LazyLayer::Inflater() const {
  std::shared_ptr<const BlobReader> blob = blob_;
  return std::shared_ptr<const SpanSource>(new SpanInflater(index_, *blob),
                                           [blob](const SpanSource* s) { delete s; });
}

LazyLayer::~LazyLayer() { (void)Close(); }

absl::StatusOr<bool> LazyLayer::Serve(FuseServer& fuse, const std::string& mountpoint) {
  // Made local before (a restart, the same layer pulled again): its tree is the layer.
  std::string tree;
  if (!dir_.empty()) {
    (void)RemoveUnfinishedTrees(dir_);  // a write a crash interrupted starts again later
    struct stat st;
    const std::string path = dir_ + "/tree";
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) tree = path;
  }
  fuse_ = &fuse;
  mountpoint_ = mountpoint;
  if (!tree.empty() && !fuse.Offered(mountpoint)) {
    // A clip FUSE mount left there is dead (no holder kept its connection): a path
    // handed out before would see ENOTCONN. The tree takes its place.
    if (ClipFuseOnTop(mountpoint)) {
      absl::Status st = ReplaceTopMount(tree, mountpoint);
      Log(st.ok() ? LogLevel::kInfo : LogLevel::kWarning, "lazy",
          absl::StrCat("the dead FUSE mount of ", digest_.ToString(), " at ", mountpoint,
                       st.ok() ? " was replaced by its tree" : ": ", st.message()));
    }
    absl::MutexLock lock(&mu_);
    tree_ = tree;
    local_since_ = absl::Now();
    return false;
  }
  auto fs = std::make_shared<LayerFs>(index_, spans_);
  if (!tree.empty()) {
    // A container started before still reads through its FUSE mount: from the tree.
    if (absl::Status st = fs->UseTree(tree); !st.ok()) {
      Log(LogLevel::kWarning, "lazy", st.message());
      tree.clear();
    }
  }
  passthrough_ =
      options_.passthrough && AverageFileSize(*index_) >= options_.passthrough_min_file_bytes;
  CLIP_ASSIGN_OR_RETURN(FuseServer::MountId id, fuse.Mount(mountpoint, fs, passthrough_));
  id_ = id;
  fs_ = std::move(fs);
  adopted_ = fuse.IsAdopted(id);
  // Taken over detached: an earlier daemon bound the tree there, or died before it did.
  const bool detached = !tree.empty() && fuse.Detached(id);
  if (detached) {
    absl::MutexLock lock(&mount_mu_);
    if (absl::Status st = fuse.DetachFrom(id, tree); !st.ok()) {
      Log(LogLevel::kWarning, "lazy", st.message());
    }
  }
  absl::MutexLock lock(&mu_);
  tree_ = tree;
  detached_ = detached;
  if (!tree.empty()) local_since_ = absl::Now();
  return true;
}

void LazyLayer::StartFill(const BackgroundFill::Options& options, absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  if (closed_ || !tree_.empty() || fill_ != nullptr) return;
  fill_ = std::make_unique<DelayedFill>(spans_, options, delay);
}

bool LazyLayer::filling() const {
  absl::MutexLock lock(&mu_);
  return fill_ != nullptr && !fill_->done();
}

bool LazyLayer::filled() const {
  absl::MutexLock lock(&mu_);
  return fill_ != nullptr && fill_->done();
}

void LazyLayer::StartRecording() {
  absl::MutexLock lock(&mu_);
  recording_ = std::make_shared<SpanAccessLog>();
  spans_->SetAccessLog(recording_);
}

std::shared_ptr<SpanAccessLog> LazyLayer::EndRecording() {
  absl::MutexLock lock(&mu_);
  if (recording_ != nullptr) spans_->SetAccessLog(nullptr);
  return std::move(recording_);
}

std::shared_ptr<const SpanAccessLog> LazyLayer::recording() const {
  absl::MutexLock lock(&mu_);
  return recording_;
}

void LazyLayer::StartReplay(const std::vector<uint32_t>& order, ThreadPool* pool,
                            const ProfileReplay::Options& options) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  replay_ = ProfileReplay::Start(spans_, order, pool, options);
}

std::shared_ptr<const ProfileReplay::Progress> LazyLayer::replay() const {
  absl::MutexLock lock(&mu_);
  return replay_;
}

std::string LazyLayer::tree() const {
  absl::MutexLock lock(&mu_);
  return tree_;
}

bool LazyLayer::MayBecomeLocal(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (closed_ || dir_.empty() || !tree_.empty()) return false;
  if (tree_job_ == nullptr) return true;
  if (!tree_job_->failed || now - tree_job_->failed_at < options_.tree_retry) return false;
  tree_job_->thread.join();  // it has ended
  tree_job_ = nullptr;
  return true;
}

bool LazyLayer::WritingTree() const {
  absl::MutexLock lock(&mu_);
  return !closed_ && tree_job_ != nullptr && tree_.empty() && !tree_job_->failed;
}

bool LazyLayer::AllSpansOnDisk() const {
  if (options_.tiers.disk == nullptr) return false;
  for (size_t s = 0; s < SpanCount(*index_); ++s) {
    if (!options_.tiers.disk->Contains(GetSpanInfo(*index_, s).digest)) return false;
  }
  return true;
}

void LazyLayer::StartTree(std::function<bool()> shared) {
  absl::MutexLock lock(&mu_);
  if (closed_ || tree_job_ != nullptr || !tree_.empty()) return;
  auto job = std::make_shared<TreeJob>();
  job->thread =
      std::thread([this, j = job.get(), shared = std::move(shared)] { MakeLocal(*j, shared); });
  tree_job_ = std::move(job);
}

void LazyLayer::MakeLocal(TreeJob& job, const std::function<bool()>& shared) {
  const std::string tree = dir_ + "/tree";
  const absl::Time start = absl::Now();
  // Its own span source over the same tiers: the spans on disk, verified, and outside
  // the layer's access log (the writer's reads are not a container's).
  LayerFs fs(index_, std::make_shared<TieredSpanSource>(index_, Inflater(), options_.tiers));
  LayerTreeOptions o;
  o.before_entry = [this, &job](const std::string& path) {
    if (options_.before_tree_entry) options_.before_tree_entry(path);
    return job.cancel ? absl::CancelledError("the layer is unmounted") : absl::OkStatus();
  };
  absl::Status written = WriteLayerTree(fs, tree, o);
  if (written.code() == absl::StatusCode::kAlreadyExists) written = absl::OkStatus();
  if (!written.ok()) {
    if (!job.cancel) {
      Log(LogLevel::kWarning, "lazy",
          absl::StrCat("layer ", digest_.ToString(), " stays lazy: its tree could not be written (",
                       written.message(), "); tried again later"));
      ++tree_failures_;
    }
    job.failed_at = absl::Now();
    job.failed = true;  // MayBecomeLocal allows another one tree_retry later
    return;
  }
  if (job.cancel) return;  // written, but the layer is going (its directory with it)
  if (fs_ != nullptr) {
    if (absl::Status st = fs_->UseTree(tree); !st.ok()) {
      Log(LogLevel::kWarning, "lazy", st.message());
      job.failed_at = absl::Now();
      job.failed = true;
      return;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    tree_ = tree;
    local_since_ = absl::Now();
  }
  size_t dropped = 0;
  if (!shared()) {  // the data is the tree's now: the caches' copies go (not the fleet's)
    for (size_t s = 0; s < SpanCount(*index_); ++s) {
      const Digest span = GetSpanInfo(*index_, s).digest;
      if (options_.tiers.memory != nullptr) (void)options_.tiers.memory->Remove(span);
      if (options_.tiers.disk != nullptr) dropped += options_.tiers.disk->Remove(span).ok();
    }
  }
  Log(LogLevel::kInfo, "remote",
      absl::StrCat("layer ", digest_.ToString(), " is local: written as a tree at ", tree, " in ",
                   absl::FormatDuration(absl::Now() - start),
                   "; new containers read it through overlayfs, running ones through FUSE from "
                   "the tree",
                   passthrough_ ? " (files opened from now on in passthrough)" : "", "; ", dropped,
                   " of ", SpanCount(*index_), " spans left the disk cache"));
}

bool LazyLayer::DetachIfDue(absl::Time now, absl::Duration after) {
  std::string tree;
  {
    absl::MutexLock lock(&mu_);
    if (closed_ || tree_.empty() || !id_ || detached_ || now - local_since_ < after) return false;
    detached_ = true;
    tree = tree_;
  }
  absl::MutexLock lock(&mount_mu_);
  if (absl::Status st = fuse_->DetachFrom(*id_, tree); !st.ok()) {
    Log(LogLevel::kWarning, "lazy", st.message());
  }
  return true;
}

absl::Status LazyLayer::Close() {
  std::shared_ptr<TreeJob> job;
  std::unique_ptr<DelayedFill> fill;
  std::shared_ptr<ProfileReplay::Progress> replay;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return absl::OkStatus();
    closed_ = true;
    job = tree_job_;
    fill = std::move(fill_);
    replay = replay_;
    if (recording_ != nullptr) spans_->SetAccessLog(nullptr);
  }
  if (job != nullptr) {
    job->cancel = true;  // its snapshot is going, the tree too: a write in progress stops
    job->thread.join();
  }
  if (replay != nullptr) replay->Cancel();
  fill.reset();  // cancel before the mount goes
  if (!id_) {
    // The tree an earlier daemon bound at the mountpoint (FuseServer::DetachFrom).
    if (!mountpoint_.empty()) UnmountStack(mountpoint_);
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mount_mu_);
  return fuse_->Unmount(*id_);
}

}  // namespace clip
