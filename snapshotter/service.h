// SnapshotsService: containerd's snapshots v1 gRPC service over a Snapshotter, the one
// place where absl::Status becomes grpc::Status (NotFound, AlreadyExists,
// FailedPrecondition, InvalidArgument keep their meaning; containerd maps them back to
// its errdefs). The `snapshotter` field of requests is ignored: one daemon serves one
// snapshotter. The `containerd-namespace` metadata is logged at debug level only: the
// keys containerd sends are already namespaced ("<namespace>/<n>/<name>").
//
// The handlers can be called directly (a null ServerContext is fine), as the tests and
// the fuzzer do:
//
//   SnapshotsService service(*snapshotter);
//   StatSnapshotRequest req;
//   req.set_key("k");
//   StatSnapshotResponse resp;
//   grpc::Status st = service.Stat(nullptr, &req, &resp);
//
// Thread safety: safe for concurrent use (gRPC calls it from many threads).
#ifndef CLIP_SNAPSHOTTER_SERVICE_H_
#define CLIP_SNAPSHOTTER_SERVICE_H_

#include <memory>

#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"
#include "snapshotter/snapshotter.h"

namespace clip {

grpc::Status ToGrpc(const absl::Status& status);

class SnapshotsService final : public containerd::services::snapshots::v1::Snapshots::Service {
 public:
  explicit SnapshotsService(Snapshotter& snapshotter) : s_(snapshotter) {}

  using Req = grpc::ServerContext;
  grpc::Status Prepare(Req*, const containerd::services::snapshots::v1::PrepareSnapshotRequest*,
                       containerd::services::snapshots::v1::PrepareSnapshotResponse*) override;
  grpc::Status View(Req*, const containerd::services::snapshots::v1::ViewSnapshotRequest*,
                    containerd::services::snapshots::v1::ViewSnapshotResponse*) override;
  grpc::Status Mounts(Req*, const containerd::services::snapshots::v1::MountsRequest*,
                      containerd::services::snapshots::v1::MountsResponse*) override;
  grpc::Status Commit(Req*, const containerd::services::snapshots::v1::CommitSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Remove(Req*, const containerd::services::snapshots::v1::RemoveSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Stat(Req*, const containerd::services::snapshots::v1::StatSnapshotRequest*,
                    containerd::services::snapshots::v1::StatSnapshotResponse*) override;
  grpc::Status Update(Req*, const containerd::services::snapshots::v1::UpdateSnapshotRequest*,
                      containerd::services::snapshots::v1::UpdateSnapshotResponse*) override;
  grpc::Status List(
      Req*, const containerd::services::snapshots::v1::ListSnapshotsRequest*,
      grpc::ServerWriter<containerd::services::snapshots::v1::ListSnapshotsResponse>*) override;
  // List's body over any stream: gRPC's ServerWriter cannot be made outside gRPC, so
  // tests and the fuzzer pass a writer of their own.
  grpc::Status ListTo(
      const containerd::services::snapshots::v1::ListSnapshotsRequest& request,
      grpc::ServerWriterInterface<containerd::services::snapshots::v1::ListSnapshotsResponse>*
          writer);
  grpc::Status Usage(Req*, const containerd::services::snapshots::v1::UsageRequest*,
                     containerd::services::snapshots::v1::UsageResponse*) override;
  grpc::Status Cleanup(Req*, const containerd::services::snapshots::v1::CleanupRequest*,
                       google::protobuf::Empty*) override;

 private:
  Snapshotter& s_;
};

// Conversions shared by the service and its client.
void ToProto(const SnapshotInfo& in, containerd::services::snapshots::v1::Info* out);
SnapshotInfo FromProto(const containerd::services::snapshots::v1::Info& in);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_SERVICE_H_
