#include "cmd/lazy_pull.h"

#include <unistd.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "containerd/services/content/v1/content.grpc.pb.h"
#include "containerd/services/diff/v1/diff.grpc.pb.h"
#include "containerd/services/images/v1/images.grpc.pb.h"
#include "containerd/services/leases/v1/leases.grpc.pb.h"
#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "rapidjson/document.h"
#include "registry/image_binding.h"
#include "snapshotter/snapshot_labels.h"

namespace clip {
namespace {

namespace content = ::containerd::services::content::v1;
namespace diff = ::containerd::services::diff::v1;
namespace images = ::containerd::services::images::v1;
namespace leases = ::containerd::services::leases::v1;
namespace snapshots = ::containerd::services::snapshots::v1;

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("containerd ", what, ": ", s.error_message()));
}

// One containerd session: stubs on one channel, every call in the namespace and,
// once taken, under the lease.
class Containerd {
 public:
  Containerd(const LazyPullOptions& o)
      : options_(o),
        channel_(grpc::CreateChannel("unix:" + o.containerd_address,
                                     grpc::InsecureChannelCredentials())),
        content_(content::Content::NewStub(channel_)),
        diff_(diff::Diff::NewStub(channel_)),
        images_(images::Images::NewStub(channel_)),
        leases_(leases::Leases::NewStub(channel_)),
        snapshots_(snapshots::Snapshots::NewStub(channel_)) {}

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("containerd-namespace", options_.ns);
    if (!lease_.empty()) ctx->AddMetadata("containerd-lease", lease_);
    ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(options_.timeout));
    return ctx;
  }

  absl::Status TakeLease() {
    leases::CreateRequest req;
    req.set_id(absl::StrCat("clip-pull-", getpid(), "-", absl::ToUnixNanos(absl::Now())));
    // Collected by containerd after an hour if this process dies before releasing it.
    (*req.mutable_labels())["containerd.io/gc.expire"] =
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + absl::Hours(1), absl::UTCTimeZone());
    leases::CreateResponse resp;
    CLIP_RETURN_IF_ERROR(FromGrpc(leases_->Create(Context().get(), req, &resp), "lease"));
    lease_ = resp.lease().id();
    return absl::OkStatus();
  }

  void ReleaseLease() {
    if (lease_.empty()) return;
    leases::DeleteRequest req;
    req.set_id(lease_);
    google::protobuf::Empty e;
    std::string id = std::move(lease_);
    lease_.clear();
    (void)leases_->Delete(Context().get(), req, &e);
  }

  absl::StatusOr<bool> HasContent(const Digest& d) {
    content::InfoRequest req;
    req.set_digest(d.ToString());
    content::InfoResponse resp;
    grpc::Status s = content_->Info(Context().get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return false;
    CLIP_RETURN_IF_ERROR(FromGrpc(s, "content info"));
    return true;
  }

  // Streams a blob into the content store: `produce` feeds the bytes to the sink it is
  // given (WRITE messages), then COMMIT with the expected digest, which containerd
  // verifies. Nothing is buffered here beyond one chunk.
  using Sink = std::function<absl::Status(absl::string_view)>;
  absl::Status WriteContent(const Digest& d, int64_t size,
                            const std::map<std::string, std::string>& labels,
                            const std::function<absl::Status(const Sink&)>& produce) {
    CLIP_ASSIGN_OR_RETURN(bool present, HasContent(d));
    if (present) return UpdateLabels(d, labels);
    auto ctx = Context();
    auto stream = content_->Write(ctx.get());
    const std::string ref = absl::StrCat("clip-pull-", d.ToString());
    auto request = [&](content::WriteAction action, int64_t offset) {
      content::WriteContentRequest r;
      r.set_action(action);
      r.set_ref(ref);
      r.set_total(size);
      r.set_expected(d.ToString());
      r.set_offset(offset);
      return r;
    };
    content::WriteContentRequest req = request(content::STAT, 0);
    content::WriteContentResponse resp;
    if (!stream->Write(req) || !stream->Read(&resp)) {
      return FromGrpc(stream->Finish(), absl::StrCat("content write ", d.ToString()));
    }
    auto finish = [&]() {
      stream->WritesDone();
      // containerd 1.6 answers a COMMIT twice: read to the end, or Finish() waits forever.
      while (stream->Read(&resp)) {
      }
      return stream->Finish();
    };
    if (resp.offset() > 0) {
      // A previous, interrupted ingest under this ref: abort it and start over.
      (void)finish();
      content::AbortRequest abort;
      abort.set_ref(ref);
      google::protobuf::Empty e;
      CLIP_RETURN_IF_ERROR(FromGrpc(content_->Abort(Context().get(), abort, &e),
                                    absl::StrCat("content abort ", ref)));
      return WriteContent(d, size, labels, produce);  // the ref is fresh now: no loop
    }
    int64_t offset = 0;
    bool broken = false;
    absl::Status produced = produce([&](absl::string_view chunk) -> absl::Status {
      for (size_t at = 0; at < chunk.size();) {
        size_t n = std::min<size_t>(chunk.size() - at, 1 << 20);
        content::WriteContentRequest w = request(content::WRITE, offset);
        w.set_data(chunk.data() + at, n);
        if (!stream->Write(w) || !stream->Read(&resp)) {
          broken = true;
          return absl::UnavailableError("content write stream broken");
        }
        offset += static_cast<int64_t>(n);
        at += n;
      }
      return absl::OkStatus();
    });
    if (!produced.ok() || broken) {
      grpc::Status s = finish();
      if (!s.ok()) return FromGrpc(s, absl::StrCat("content write ", d.ToString()));
      return produced;
    }
    content::WriteContentRequest commit = request(content::COMMIT, offset);
    for (const auto& [k, v] : labels) (*commit.mutable_labels())[k] = v;
    stream->Write(commit);
    grpc::Status s = finish();
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) return UpdateLabels(d, labels);
    return FromGrpc(s, absl::StrCat("content write ", d.ToString()));
  }

  absl::Status UpdateLabels(const Digest& d, const std::map<std::string, std::string>& labels) {
    if (labels.empty()) return absl::OkStatus();
    content::UpdateRequest req;
    req.mutable_info()->set_digest(d.ToString());
    for (const auto& [k, v] : labels) {
      (*req.mutable_info()->mutable_labels())[k] = v;
      req.mutable_update_mask()->add_paths(absl::StrCat("labels.", k));
    }
    content::UpdateResponse resp;
    return FromGrpc(content_->Update(Context().get(), req, &resp), "content update");
  }

  absl::StatusOr<bool> HasSnapshot(const std::string& key) {
    snapshots::StatSnapshotRequest req;
    req.set_snapshotter(options_.snapshotter);
    req.set_key(key);
    snapshots::StatSnapshotResponse resp;
    grpc::Status s = snapshots_->Stat(Context().get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return false;
    CLIP_RETURN_IF_ERROR(FromGrpc(s, "snapshot stat"));
    return true;
  }

  // OK with mounts: an ordinary (empty) snapshot to extract into; nullopt: the snapshot
  // named by the target label exists already (clip mounted it lazily).
  absl::StatusOr<std::optional<snapshots::PrepareSnapshotResponse>> Prepare(
      const std::string& key, const std::string& parent,
      const std::map<std::string, std::string>& labels) {
    snapshots::PrepareSnapshotRequest req;
    req.set_snapshotter(options_.snapshotter);
    req.set_key(key);
    req.set_parent(parent);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    snapshots::PrepareSnapshotResponse resp;
    grpc::Status s = snapshots_->Prepare(Context().get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) return std::nullopt;
    CLIP_RETURN_IF_ERROR(FromGrpc(s, "snapshot prepare"));
    return resp;
  }

  absl::Status Commit(const std::string& name, const std::string& key) {
    snapshots::CommitSnapshotRequest req;
    req.set_snapshotter(options_.snapshotter);
    req.set_name(name);
    req.set_key(key);
    google::protobuf::Empty e;
    return FromGrpc(snapshots_->Commit(Context().get(), req, &e), "snapshot commit");
  }

  void RemoveSnapshot(const std::string& key) {
    snapshots::RemoveSnapshotRequest req;
    req.set_snapshotter(options_.snapshotter);
    req.set_key(key);
    google::protobuf::Empty e;
    (void)snapshots_->Remove(Context().get(), req, &e);
  }

  absl::StatusOr<Digest> Apply(
      const Descriptor& layer,
      const google::protobuf::RepeatedPtrField<containerd::types::Mount>& mounts) {
    diff::ApplyRequest req;
    req.mutable_diff()->set_media_type(layer.media_type);
    req.mutable_diff()->set_digest(layer.digest.ToString());
    req.mutable_diff()->set_size(layer.size);
    *req.mutable_mounts() = mounts;
    diff::ApplyResponse resp;
    CLIP_RETURN_IF_ERROR(FromGrpc(diff_->Apply(Context().get(), req, &resp), "diff apply"));
    return Digest::Parse(resp.applied().digest());
  }

  absl::Status PutImage(const std::string& name, const Manifest& manifest) {
    images::Image image;
    image.set_name(name);
    image.mutable_target()->set_media_type(manifest.media_type);
    image.mutable_target()->set_digest(manifest.digest.ToString());
    image.mutable_target()->set_size(static_cast<int64_t>(manifest.bytes.size()));
    images::CreateImageRequest create;
    *create.mutable_image() = image;
    images::CreateImageResponse created;
    grpc::Status s = images_->Create(Context().get(), create, &created);
    if (s.error_code() != grpc::StatusCode::ALREADY_EXISTS) return FromGrpc(s, "image create");
    images::UpdateImageRequest update;
    *update.mutable_image() = image;
    update.mutable_update_mask()->add_paths("target");
    images::UpdateImageResponse updated;
    return FromGrpc(images_->Update(Context().get(), update, &updated), "image update");
  }

 private:
  const LazyPullOptions& options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<content::Content::Stub> content_;
  std::unique_ptr<diff::Diff::Stub> diff_;
  std::unique_ptr<images::Images::Stub> images_;
  std::unique_ptr<leases::Leases::Stub> leases_;
  std::unique_ptr<snapshots::Snapshots::Stub> snapshots_;
  std::string lease_;
};

absl::StatusOr<std::vector<Digest>> DiffIds(const std::string& config) {
  rapidjson::Document doc;
  doc.Parse(config.data(), config.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("rootfs") ||
      !doc["rootfs"].IsObject() || !doc["rootfs"].HasMember("diff_ids") ||
      !doc["rootfs"]["diff_ids"].IsArray()) {
    return absl::DataLossError("image config has no rootfs.diff_ids");
  }
  std::vector<Digest> out;
  for (const auto& v : doc["rootfs"]["diff_ids"].GetArray()) {
    if (!v.IsString()) return absl::DataLossError("image config: a diff_id is not a string");
    CLIP_ASSIGN_OR_RETURN(Digest d, Digest::Parse(v.GetString()));
    out.push_back(d);
  }
  return out;
}

// The OCI chain IDs: chain[0] = diff[0]; chain[i] = sha256(chain[i-1] + " " + diff[i]).
std::vector<Digest> ChainIds(const std::vector<Digest>& diff_ids) {
  std::vector<Digest> chain;
  for (const Digest& d : diff_ids) {
    chain.push_back(
        chain.empty() ? d : Digest::Of(absl::StrCat(chain.back().ToString(), " ", d.ToString())));
  }
  return chain;
}

// A producer for WriteContent of bytes already in memory (manifest, config).
std::function<absl::Status(const std::function<absl::Status(absl::string_view)>&)> Bytes(
    const std::string& bytes) {
  return
      [&bytes](const std::function<absl::Status(absl::string_view)>& sink) { return sink(bytes); };
}

absl::Status PullLayers(Containerd& c, const RegistryClient& registry, const Reference& ref,
                        const Manifest& manifest, const std::optional<Digest>& bound_artifact,
                        const ImageManifest& image, const std::vector<Digest>& diff_ids,
                        const std::vector<Digest>& chain, std::ostream& log,
                        LazyPullReport* report) {
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const Descriptor& layer = image.layers[i];
    const std::string name = chain[i].ToString();
    const std::string parent = i == 0 ? "" : chain[i - 1].ToString();
    CLIP_ASSIGN_OR_RETURN(bool present, c.HasSnapshot(name));
    if (present) {
      ++report->present;
      log << "  layer " << i + 1 << "/" << image.layers.size() << " " << layer.digest.ToString()
          << ": present\n";
      continue;
    }
    std::map<std::string, std::string> labels = {
        {kSnapshotRefLabel, name},
        {kImageRefLabel, ref.ToString()},
        {kLayerDigestLabel, layer.digest.ToString()},
        {kManifestDigestLabel, manifest.digest.ToString()}};
    std::string rest;
    for (size_t j = i; j < image.layers.size(); ++j) {
      std::string d = image.layers[j].digest.ToString();
      if (rest.size() + d.size() + 1 > kMaxLabelBytes) break;
      absl::StrAppend(&rest, rest.empty() ? "" : ",", d);
    }
    labels[kImageLayersLabel] = rest;
    if (bound_artifact) labels[kBoundArtifactLabel] = bound_artifact->ToString();
    const std::string key = absl::StrCat("extract-", absl::ToUnixNanos(absl::Now()), "-", name);
    CLIP_ASSIGN_OR_RETURN(auto prepared, c.Prepare(key, parent, labels));
    if (!prepared) {
      ++report->lazy;
      log << "  layer " << i + 1 << "/" << image.layers.size() << " " << layer.digest.ToString()
          << ": lazy (clip index)\n";
      continue;
    }
    // No index: download, store and extract it as containerd's unpacker would.
    absl::Status st = [&]() -> absl::Status {
      // Streamed from the registry (digest verified, resumed) into the content store.
      CLIP_RETURN_IF_ERROR(
          c.WriteContent(layer.digest, layer.size, {}, [&](const Containerd::Sink& sink) {
            return registry.FetchBlob(ref, layer.digest, [&](absl::string_view chunk) {
              report->downloaded_bytes += chunk.size();
              return sink(chunk);
            });
          }));
      CLIP_ASSIGN_OR_RETURN(Digest applied, c.Apply(layer, prepared->mounts()));
      if (applied != diff_ids[i]) {
        return absl::DataLossError(absl::StrCat("layer ", layer.digest.ToString(), " unpacked to ",
                                                applied.ToString(), ", the config says ",
                                                diff_ids[i].ToString()));
      }
      return c.Commit(name, key);
    }();
    if (!st.ok()) {
      c.RemoveSnapshot(key);
      return st;
    }
    ++report->extracted;
    log << "  layer " << i + 1 << "/" << image.layers.size() << " " << layer.digest.ToString()
        << ": downloaded and unpacked (no clip index)\n";
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LazyPullReport> LazyPull(const LazyPullOptions& options,
                                        const RegistryClient& registry, std::ostream& log) {
  CLIP_ASSIGN_OR_RETURN(ResolvedImage resolved,
                        ResolveImage(registry, options.image, options.platform));
  const Reference& ref = resolved.ref;
  const Platform& platform = resolved.platform;
  const Manifest& manifest = resolved.manifest;
  const ImageManifest& image = resolved.image;
  // The clip artifact the reference's bound index binds to this manifest, if any: the
  // daemon need not fetch the index again (snapshot_labels.h).
  std::optional<Digest> bound_artifact;
  if (resolved.index) {
    absl::StatusOr<ImageBinding> binding = ParseImageBinding(resolved.index->bytes);
    if (binding.ok() && binding->Lists(manifest.digest)) {
      if (std::optional<Descriptor> a = binding->ArtifactFor(manifest.digest)) {
        bound_artifact = a->digest;
      }
    }
  }
  CLIP_ASSIGN_OR_RETURN(std::string config, FetchBlobToString(registry, ref, image.config.digest));
  CLIP_ASSIGN_OR_RETURN(std::vector<Digest> diff_ids, DiffIds(config));
  if (diff_ids.size() != image.layers.size()) {
    return absl::DataLossError(absl::StrCat("manifest lists ", image.layers.size(),
                                            " layers, its config ", diff_ids.size(), " diff_ids"));
  }
  std::vector<Digest> chain = ChainIds(diff_ids);
  LazyPullReport report;
  report.manifest = manifest.digest;
  report.layers = static_cast<int>(image.layers.size());
  log << ref.ToString() << " " << platform.ToString() << " " << manifest.digest.ToString() << "\n";

  Containerd c(options);
  CLIP_RETURN_IF_ERROR(c.TakeLease());
  absl::Status st = [&]() -> absl::Status {
    CLIP_RETURN_IF_ERROR(PullLayers(c, registry, ref, manifest, bound_artifact, image, diff_ids,
                                    chain, log, &report));
    // What containerd's own pull records, so GC keeps the config and the snapshots as
    // long as the image exists.
    std::map<std::string, std::string> config_labels;
    if (!chain.empty()) {
      config_labels[absl::StrCat("containerd.io/gc.ref.snapshot.", options.snapshotter)] =
          chain.back().ToString();
    }
    CLIP_RETURN_IF_ERROR(c.WriteContent(image.config.digest, static_cast<int64_t>(config.size()),
                                        config_labels, Bytes(config)));
    std::map<std::string, std::string> manifest_labels = {
        {"containerd.io/gc.ref.content.config", image.config.digest.ToString()}};
    for (size_t i = 0; i < image.layers.size(); ++i) {
      manifest_labels[absl::StrCat("containerd.io/gc.ref.content.l.", i)] =
          image.layers[i].digest.ToString();
    }
    CLIP_RETURN_IF_ERROR(c.WriteContent(manifest.digest,
                                        static_cast<int64_t>(manifest.bytes.size()),
                                        manifest_labels, Bytes(manifest.bytes)));
    return c.PutImage(ref.ToString(), manifest);
  }();
  c.ReleaseLease();
  CLIP_RETURN_IF_ERROR(st);
  return report;
}

}  // namespace clip
