// Snapshotter: containerd's snapshot model as a C++ interface, with its error codes:
// kNotFound, kAlreadyExists, kFailedPrecondition (not active, has children),
// kInvalidArgument (bad parent kind, bad update path, labels too large).
//
// A snapshot is active (writable, from Prepare), a view (read-only, from View) or
// committed (from Commit of an active one; only committed snapshots can be parents).
// The gRPC service (service.h) is a shim over this interface; the conformance suite
// runs against any implementation (the core, or a gRPC client of the service).
//
// Thread safety: implementations are safe for concurrent use.
#ifndef CLIP_SNAPSHOTTER_SNAPSHOTTER_H_
#define CLIP_SNAPSHOTTER_SNAPSHOTTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace clip {

enum class SnapshotKind { kUnknown = 0, kView = 1, kActive = 2, kCommitted = 3 };

using Labels = std::map<std::string, std::string>;

struct SnapshotInfo {
  std::string name;
  std::string parent;
  SnapshotKind kind = SnapshotKind::kUnknown;
  absl::Time created;
  absl::Time updated;
  Labels labels;
};

struct SnapshotUsage {
  int64_t size = 0;  // bytes on disk
  int64_t inodes = 0;
};

struct MountSpec {
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

class Snapshotter {
 public:
  virtual ~Snapshotter() = default;
  virtual absl::StatusOr<SnapshotInfo> Stat(const std::string& key) = 0;
  // `paths` empty: replace all labels; else only "labels" or "labels.<key>" paths.
  virtual absl::StatusOr<SnapshotInfo> Update(const SnapshotInfo& info,
                                              const std::vector<std::string>& paths) = 0;
  virtual absl::StatusOr<SnapshotUsage> Usage(const std::string& key) = 0;
  virtual absl::StatusOr<std::vector<MountSpec>> Mounts(const std::string& key) = 0;
  virtual absl::StatusOr<std::vector<MountSpec>> Prepare(const std::string& key,
                                                         const std::string& parent,
                                                         const Labels& labels) = 0;
  virtual absl::StatusOr<std::vector<MountSpec>> View(const std::string& key,
                                                      const std::string& parent,
                                                      const Labels& labels) = 0;
  virtual absl::Status Commit(const std::string& name, const std::string& key,
                              const Labels& labels) = 0;
  virtual absl::Status Remove(const std::string& key) = 0;
  // Calls `fn` for every snapshot matching any of `filters` (containerd syntax; none:
  // all). An error from `fn` stops the walk and is returned.
  virtual absl::Status Walk(const std::vector<std::string>& filters,
                            const std::function<absl::Status(const SnapshotInfo&)>& fn) = 0;
  virtual absl::Status Cleanup() = 0;
};

// containerd's label limit: key and value together at most 4096 bytes.
absl::Status ValidateLabels(const Labels& labels);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_SNAPSHOTTER_H_
