#include "snapshotter/grpc_snapshotter.h"

#include "grpcpp/grpcpp.h"
#include "snapshotter/service.h"

namespace clip {
namespace {

namespace v1 = ::containerd::services::snapshots::v1;

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::vector<MountSpec> FromMounts(
    const google::protobuf::RepeatedPtrField<containerd::types::Mount>& in) {
  std::vector<MountSpec> out;
  for (const auto& m : in) {
    out.push_back({m.type(), m.source(), {m.options().begin(), m.options().end()}});
  }
  return out;
}

template <typename Map>
void SetLabels(const Labels& labels, Map* out) {
  for (const auto& [k, v] : labels) (*out)[k] = v;
}

}  // namespace

GrpcSnapshotter::GrpcSnapshotter(const std::string& target, std::string name)
    : stub_(
          v1::Snapshots::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))),
      name_(std::move(name)) {}

absl::StatusOr<SnapshotInfo> GrpcSnapshotter::Stat(const std::string& key) {
  v1::StatSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(key);
  v1::StatSnapshotResponse resp;
  grpc::ClientContext ctx;
  absl::Status s = FromGrpc(stub_->Stat(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromProto(resp.info());
}

absl::StatusOr<SnapshotInfo> GrpcSnapshotter::Update(const SnapshotInfo& info,
                                                     const std::vector<std::string>& paths) {
  v1::UpdateSnapshotRequest req;
  req.set_snapshotter(name_);
  ToProto(info, req.mutable_info());
  for (const auto& p : paths) req.mutable_update_mask()->add_paths(p);
  v1::UpdateSnapshotResponse resp;
  grpc::ClientContext ctx;
  absl::Status s = FromGrpc(stub_->Update(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromProto(resp.info());
}

absl::StatusOr<SnapshotUsage> GrpcSnapshotter::Usage(const std::string& key) {
  v1::UsageRequest req;
  req.set_snapshotter(name_);
  req.set_key(key);
  v1::UsageResponse resp;
  grpc::ClientContext ctx;
  absl::Status s = FromGrpc(stub_->Usage(&ctx, req, &resp));
  if (!s.ok()) return s;
  return SnapshotUsage{resp.size(), resp.inodes()};
}

absl::StatusOr<std::vector<MountSpec>> GrpcSnapshotter::Mounts(const std::string& key) {
  v1::MountsRequest req;
  req.set_snapshotter(name_);
  req.set_key(key);
  v1::MountsResponse resp;
  grpc::ClientContext ctx;
  absl::Status s = FromGrpc(stub_->Mounts(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromMounts(resp.mounts());
}

absl::StatusOr<std::vector<MountSpec>> GrpcSnapshotter::Prepare(const std::string& key,
                                                                const std::string& parent,
                                                                const Labels& labels) {
  v1::PrepareSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(key);
  req.set_parent(parent);
  SetLabels(labels, req.mutable_labels());
  v1::PrepareSnapshotResponse resp;
  grpc::ClientContext ctx;
  absl::Status s = FromGrpc(stub_->Prepare(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromMounts(resp.mounts());
}

absl::StatusOr<std::vector<MountSpec>> GrpcSnapshotter::View(const std::string& key,
                                                             const std::string& parent,
                                                             const Labels& labels) {
  v1::ViewSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(key);
  req.set_parent(parent);
  SetLabels(labels, req.mutable_labels());
  v1::ViewSnapshotResponse resp;
  grpc::ClientContext ctx;
  absl::Status s = FromGrpc(stub_->View(&ctx, req, &resp));
  if (!s.ok()) return s;
  return FromMounts(resp.mounts());
}

absl::Status GrpcSnapshotter::Commit(const std::string& name, const std::string& key,
                                     const Labels& labels) {
  v1::CommitSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_name(name);
  req.set_key(key);
  SetLabels(labels, req.mutable_labels());
  google::protobuf::Empty resp;
  grpc::ClientContext ctx;
  return FromGrpc(stub_->Commit(&ctx, req, &resp));
}

absl::Status GrpcSnapshotter::Remove(const std::string& key) {
  v1::RemoveSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(key);
  google::protobuf::Empty resp;
  grpc::ClientContext ctx;
  return FromGrpc(stub_->Remove(&ctx, req, &resp));
}

absl::Status GrpcSnapshotter::Walk(const std::vector<std::string>& filters,
                                   const std::function<absl::Status(const SnapshotInfo&)>& fn) {
  v1::ListSnapshotsRequest req;
  req.set_snapshotter(name_);
  for (const auto& f : filters) req.add_filters(f);
  grpc::ClientContext ctx;
  auto reader = stub_->List(&ctx, req);
  v1::ListSnapshotsResponse resp;
  absl::Status cb;
  while (cb.ok() && reader->Read(&resp)) {
    for (const auto& info : resp.info()) {
      cb = fn(FromProto(info));
      if (!cb.ok()) break;
    }
  }
  if (!cb.ok()) {
    ctx.TryCancel();
    reader->Finish();
    return cb;
  }
  return FromGrpc(reader->Finish());
}

absl::Status GrpcSnapshotter::Cleanup() {
  v1::CleanupRequest req;
  req.set_snapshotter(name_);
  google::protobuf::Empty resp;
  grpc::ClientContext ctx;
  return FromGrpc(stub_->Cleanup(&ctx, req, &resp));
}

}  // namespace clip
