// GrpcSnapshotter: a Snapshotter that calls a snapshots v1 gRPC service (clip's daemon,
// or containerd's own). The conformance suite runs through it to test the service and
// its wire mapping; benchmarks use it as a client.
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_SNAPSHOTTER_GRPC_SNAPSHOTTER_H_
#define CLIP_SNAPSHOTTER_GRPC_SNAPSHOTTER_H_

#include <memory>
#include <string>

#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"
#include "snapshotter/snapshotter.h"

namespace clip {

class GrpcSnapshotter final : public Snapshotter {
 public:
  // `target` as grpc accepts it, e.g. "unix:/run/x.sock".
  explicit GrpcSnapshotter(const std::string& target, std::string snapshotter_name = "clip");

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

 private:
  std::unique_ptr<containerd::services::snapshots::v1::Snapshots::Stub> stub_;
  std::string name_;
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_GRPC_SNAPSHOTTER_H_
