// libFuzzer target: bytes as one snapshots v1 call. The first byte picks the RPC, the
// rest is parsed as its request message (ParseFromArray, as gRPC decodes it) and handed
// to SnapshotsService's handler over a real OverlaySnapshotter in a temp dir. Decoding
// and handling must never crash, leak or trip a sanitizer, and every Info sent back must
// carry valid timestamps, whatever the bytes.
//
// Every input starts from the same snapshots (only ids and times differ), so a finding
// reproduces from its input alone and the snapshotter stays small: a committed "base"
// with labels, an active "active" and a view "view" on it. After each call whatever it
// created is removed and whatever it changed is rebuilt.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/service.h"

namespace clip {
namespace {

namespace v1 = ::containerd::services::snapshots::v1;

struct Fixture {
  std::string root;
  std::unique_ptr<OverlaySnapshotter> core;
  std::unique_ptr<SnapshotsService> service;
};

Fixture* fixture = nullptr;

const Labels kBaseLabels = {{"containerd.io/snapshot.ref", "sha256:base"}, {"app", "x"}};

bool ValidTimestamp(const google::protobuf::Timestamp& ts) {
  return ts.seconds() >= -62135596800 && ts.seconds() <= 253402300799 && ts.nanos() >= 0 &&
         ts.nanos() <= 999999999;
}

void CheckInfo(const v1::Info& info) {
  if (!ValidTimestamp(info.created_at()) || !ValidTimestamp(info.updated_at())) {
    __builtin_trap();
  }
}

class CheckingWriter final : public grpc::ServerWriterInterface<v1::ListSnapshotsResponse> {
 public:
  void SendInitialMetadata() override {}
  bool Write(const v1::ListSnapshotsResponse& msg, grpc::WriteOptions) override {
    for (const v1::Info& info : msg.info()) CheckInfo(info);
    return true;
  }
};

bool IsFixed(const SnapshotInfo& info) {
  if (info.name == "base") {
    return info.kind == SnapshotKind::kCommitted && info.parent.empty() &&
           info.labels == kBaseLabels;
  }
  if (info.name == "active") {
    return info.kind == SnapshotKind::kActive && info.parent == "base" && info.labels.empty();
  }
  if (info.name == "view") {
    return info.kind == SnapshotKind::kView && info.parent == "base" && info.labels.empty();
  }
  return false;
}

// Back to the fixed state: removes what is not part of it (children first; a changed
// fixed snapshot goes too, with its children), then creates what is missing.
void Restore(Snapshotter& s) {
  std::set<std::string> present;
  for (int pass = 0;; ++pass) {
    if (pass == 8) __builtin_trap();  // one call cannot make a deeper chain than this
    std::vector<SnapshotInfo> all;
    if (!s.Walk({}, [&](const SnapshotInfo& info) {
            all.push_back(info);
            return absl::OkStatus();
          }).ok()) {
      __builtin_trap();
    }
    bool base_kept = true;
    for (const SnapshotInfo& info : all) {
      if (info.name == "base" && !IsFixed(info)) base_kept = false;
    }
    std::vector<std::string> doomed;
    present.clear();
    for (const SnapshotInfo& info : all) {
      if (IsFixed(info) && (base_kept || info.parent != "base")) {
        present.insert(info.name);
      } else {
        doomed.push_back(info.name);
      }
    }
    if (doomed.empty()) break;
    for (const std::string& name : doomed) (void)s.Remove(name);  // parents: next pass
  }
  if (!present.count("base") &&
      (!s.Prepare("base-tmp", "", {}).ok() || !s.Commit("base", "base-tmp", kBaseLabels).ok())) {
    __builtin_trap();
  }
  if (!present.count("active") && !s.Prepare("active", "base", {}).ok()) __builtin_trap();
  if (!present.count("view") && !s.View("view", "base", {}).ok()) __builtin_trap();
}

template <typename Request>
bool Parse(const uint8_t* data, size_t size, Request* req) {
  return req->ParseFromArray(data, static_cast<int>(size));
}

void Call(SnapshotsService& service, uint8_t rpc, const uint8_t* data, size_t size) {
  switch (rpc % 10) {
    case 0: {
      v1::PrepareSnapshotRequest req;
      v1::PrepareSnapshotResponse resp;
      if (Parse(data, size, &req)) (void)service.Prepare(nullptr, &req, &resp);
      break;
    }
    case 1: {
      v1::ViewSnapshotRequest req;
      v1::ViewSnapshotResponse resp;
      if (Parse(data, size, &req)) (void)service.View(nullptr, &req, &resp);
      break;
    }
    case 2: {
      v1::MountsRequest req;
      v1::MountsResponse resp;
      if (Parse(data, size, &req)) (void)service.Mounts(nullptr, &req, &resp);
      break;
    }
    case 3: {
      v1::CommitSnapshotRequest req;
      google::protobuf::Empty resp;
      if (Parse(data, size, &req)) (void)service.Commit(nullptr, &req, &resp);
      break;
    }
    case 4: {
      v1::RemoveSnapshotRequest req;
      google::protobuf::Empty resp;
      if (Parse(data, size, &req)) (void)service.Remove(nullptr, &req, &resp);
      break;
    }
    case 5: {
      v1::StatSnapshotRequest req;
      v1::StatSnapshotResponse resp;
      if (Parse(data, size, &req) && service.Stat(nullptr, &req, &resp).ok()) {
        CheckInfo(resp.info());
      }
      break;
    }
    case 6: {
      v1::UpdateSnapshotRequest req;
      v1::UpdateSnapshotResponse resp;
      if (Parse(data, size, &req) && service.Update(nullptr, &req, &resp).ok()) {
        CheckInfo(resp.info());
      }
      break;
    }
    case 7: {
      v1::ListSnapshotsRequest req;
      CheckingWriter writer;
      if (Parse(data, size, &req)) (void)service.ListTo(req, &writer);
      break;
    }
    case 8: {
      v1::UsageRequest req;
      v1::UsageResponse resp;
      if (Parse(data, size, &req)) (void)service.Usage(nullptr, &req, &resp);
      break;
    }
    case 9: {
      v1::CleanupRequest req;
      google::protobuf::Empty resp;
      if (Parse(data, size, &req)) (void)service.Cleanup(nullptr, &req, &resp);
      break;
    }
  }
}

}  // namespace
}  // namespace clip

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Invalid UTF-8 in a string field fails the parse, as it should; protobuf would also log
  // a line per input about it.
  google::protobuf::SetLogHandler(nullptr);
  const char* tmp = getenv("TEST_TMPDIR");
  std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/service-fuzz-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  // Held until exit (reachable, so not a leak); a normal exit removes the directory.
  clip::fixture = new clip::Fixture{tmpl, nullptr, nullptr};
  auto core = clip::OverlaySnapshotter::Open(tmpl + "/root");
  if (!core.ok()) abort();
  clip::fixture->core = *std::move(core);
  clip::fixture->service = std::make_unique<clip::SnapshotsService>(*clip::fixture->core);
  atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(clip::fixture->root, ignored);
  });
  clip::Restore(*clip::fixture->core);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  clip::Call(*clip::fixture->service, data[0], data + 1, size - 1);
  clip::Restore(*clip::fixture->core);
  return 0;
}
