#include "snapshotter/service.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace clip {
namespace {

namespace v1 = ::containerd::services::snapshots::v1;

Labels ToLabels(const google::protobuf::Map<std::string, std::string>& m) {
  return Labels(m.begin(), m.end());
}

void AddMounts(const std::vector<MountSpec>& mounts,
               google::protobuf::RepeatedPtrField<containerd::types::Mount>* out) {
  for (const auto& m : mounts) {
    auto* pm = out->Add();
    pm->set_type(m.type);
    pm->set_source(m.source);
    for (const auto& o : m.options) pm->add_options(o);
  }
}

// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;
constexpr int64_t kMaxTimestampNanos = 999999999;

// Clamped into Timestamp's range (what Go's CheckValid accepts), so everything sent
// decodes; absl's infinite past and future become the ends. Never via Unix nanoseconds:
// int64 nanoseconds only span 1677..2262.
google::protobuf::Timestamp ToTs(absl::Time t) {
  t = std::clamp(
      t, absl::FromUnixSeconds(kMinTimestampSeconds),
      absl::FromUnixSeconds(kMaxTimestampSeconds) + absl::Nanoseconds(kMaxTimestampNanos));
  const int64_t seconds = absl::ToUnixSeconds(t);  // rounds toward the past: nanos >= 0
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
  return ts;
}

// The instant as Go's AsTime reads it (time.Unix: nanos outside [0, 1e9) carry into the
// seconds), exact for any seconds and nanos: absl::Time spans every int64 of seconds.
// Nothing is rejected, as containerd's own service rejects nothing here: the only
// timestamps that come in are Update's, which a snapshotter ignores (its clock sets
// created and updated); `ctr snapshots label` sends Go's zero time, 0001-01-01.
absl::Time FromTs(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Counts the call by method and status code and records its latency
// (clip_snapshotter_rpc_total, clip_snapshotter_rpc_duration_seconds).
template <typename F>
grpc::Status Instrumented(const char* method, F&& body) {
  absl::Time start = absl::Now();
  grpc::Status st = body();
  MetricsRegistry& r = DefaultMetrics();
  r.GetHistogram("clip_snapshotter_rpc_duration_seconds", "Snapshots API call latency",
                 {{"method", method}})
      .Observe(absl::ToDoubleSeconds(absl::Now() - start));
  r.GetCounter("clip_snapshotter_rpc_total", "Snapshots API calls by method and status code",
               {{"method", method}, {"code", std::to_string(st.error_code())}})
      .Increment();
  return st;
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

void ToProto(const SnapshotInfo& in, v1::Info* out) {
  out->set_name(in.name);
  out->set_parent(in.parent);
  out->set_kind(static_cast<v1::Kind>(in.kind));
  *out->mutable_created_at() = ToTs(in.created);
  *out->mutable_updated_at() = ToTs(in.updated);
  for (const auto& [k, v] : in.labels) (*out->mutable_labels())[k] = v;
}

SnapshotInfo FromProto(const v1::Info& in) {
  SnapshotInfo out;
  out.name = in.name();
  out.parent = in.parent();
  out.kind = static_cast<SnapshotKind>(in.kind());
  out.created = FromTs(in.created_at());
  out.updated = FromTs(in.updated_at());
  out.labels = ToLabels(in.labels());
  return out;
}

grpc::Status SnapshotsService::Prepare(Req*, const v1::PrepareSnapshotRequest* r,
                                       v1::PrepareSnapshotResponse* resp) {
  return Instrumented("Prepare", [&]() -> grpc::Status {
    auto m = s_.Prepare(r->key(), r->parent(), ToLabels(r->labels()));
    if (!m.ok()) return ToGrpc(m.status());
    AddMounts(*m, resp->mutable_mounts());
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotsService::View(Req*, const v1::ViewSnapshotRequest* r,
                                    v1::ViewSnapshotResponse* resp) {
  return Instrumented("View", [&]() -> grpc::Status {
    auto m = s_.View(r->key(), r->parent(), ToLabels(r->labels()));
    if (!m.ok()) return ToGrpc(m.status());
    AddMounts(*m, resp->mutable_mounts());
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotsService::Mounts(Req*, const v1::MountsRequest* r, v1::MountsResponse* resp) {
  return Instrumented("Mounts", [&]() -> grpc::Status {
    auto m = s_.Mounts(r->key());
    if (!m.ok()) return ToGrpc(m.status());
    AddMounts(*m, resp->mutable_mounts());
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotsService::Commit(Req*, const v1::CommitSnapshotRequest* r,
                                      google::protobuf::Empty*) {
  return Instrumented("Commit", [&]() -> grpc::Status {
    return ToGrpc(s_.Commit(r->name(), r->key(), ToLabels(r->labels())));
  });
}

grpc::Status SnapshotsService::Remove(Req*, const v1::RemoveSnapshotRequest* r,
                                      google::protobuf::Empty*) {
  return Instrumented("Remove", [&]() -> grpc::Status { return ToGrpc(s_.Remove(r->key())); });
}

grpc::Status SnapshotsService::Stat(Req*, const v1::StatSnapshotRequest* r,
                                    v1::StatSnapshotResponse* resp) {
  return Instrumented("Stat", [&]() -> grpc::Status {
    auto info = s_.Stat(r->key());
    if (!info.ok()) return ToGrpc(info.status());
    ToProto(*info, resp->mutable_info());
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotsService::Update(Req*, const v1::UpdateSnapshotRequest* r,
                                      v1::UpdateSnapshotResponse* resp) {
  return Instrumented("Update", [&]() -> grpc::Status {
    std::vector<std::string> paths(r->update_mask().paths().begin(),
                                   r->update_mask().paths().end());
    auto info = s_.Update(FromProto(r->info()), paths);
    if (!info.ok()) return ToGrpc(info.status());
    ToProto(*info, resp->mutable_info());
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotsService::List(Req*, const v1::ListSnapshotsRequest* r,
                                    grpc::ServerWriter<v1::ListSnapshotsResponse>* writer) {
  return ListTo(*r, writer);
}

grpc::Status SnapshotsService::ListTo(
    const v1::ListSnapshotsRequest& r,
    grpc::ServerWriterInterface<v1::ListSnapshotsResponse>* writer) {
  return Instrumented("List", [&]() -> grpc::Status {
    std::vector<std::string> filters(r.filters().begin(), r.filters().end());
    v1::ListSnapshotsResponse batch;
    constexpr int kBatch = 100;
    absl::Status s = s_.Walk(filters, [&](const SnapshotInfo& info) -> absl::Status {
      ToProto(info, batch.add_info());
      if (batch.info_size() >= kBatch) {
        if (!writer->Write(batch)) return absl::CancelledError("client went away");
        batch.Clear();
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return ToGrpc(s);
    if (batch.info_size() > 0 && !writer->Write(batch)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotsService::Usage(Req*, const v1::UsageRequest* r, v1::UsageResponse* resp) {
  return Instrumented("Usage", [&]() -> grpc::Status {
    auto u = s_.Usage(r->key());
    if (!u.ok()) return ToGrpc(u.status());
    resp->set_size(u->size);
    resp->set_inodes(u->inodes);
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotsService::Cleanup(Req*, const v1::CleanupRequest*, google::protobuf::Empty*) {
  return Instrumented("Cleanup", [&]() -> grpc::Status { return ToGrpc(s_.Cleanup()); });
}

}  // namespace clip
