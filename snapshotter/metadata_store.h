// MetadataStore: snapshot metadata in SQLite (Debian's libsqlite3), one transaction per
// snapshotter operation, so a crash leaves the old or the new state, never half of it
// (journal in WAL mode, synchronous=FULL).
//
//   CLIP_RETURN_IF_ERROR(store->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
//     CLIP_ASSIGN_OR_RETURN(auto parent, txn.Get(parent_name));
//     ...
//     return txn.Insert(record).status();
//   }));
//
// Schema (version 2): table `snapshots` (id INTEGER PRIMARY KEY AUTOINCREMENT,
// name TEXT UNIQUE, parent TEXT, kind INTEGER, created_ns, updated_ns, size, inodes
// INTEGER) and table `labels` (snapshot_id, key TEXT, value TEXT; primary key
// (snapshot_id, key)), so label queries can be SQL. Ids never repeat, so a snapshot's
// directory name is unique for the root's lifetime. A version 1 database (labels in a
// blob column of `snapshots`) is migrated on Open, in one transaction; a newer version
// is refused (kFailedPrecondition).
//
// Thread safety: safe for concurrent use; transactions are serialised by mu_.
#ifndef CLIP_SNAPSHOTTER_METADATA_STORE_H_
#define CLIP_SNAPSHOTTER_METADATA_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "snapshotter/snapshotter.h"

struct sqlite3;

namespace clip {

struct SnapshotRecord {
  int64_t id = 0;
  SnapshotInfo info;
  int64_t size = 0;
  int64_t inodes = 0;
};

class MetadataStore {
 public:
  static absl::StatusOr<std::unique_ptr<MetadataStore>> Open(const std::string& path);
  ~MetadataStore();

  class Txn {
   public:
    absl::StatusOr<std::optional<SnapshotRecord>> Get(const std::string& name);
    absl::StatusOr<int64_t> Insert(const SnapshotRecord& record);  // returns the new id
    absl::Status Update(const SnapshotRecord& record);             // by id
    absl::Status Delete(int64_t id);
    absl::StatusOr<int64_t> CountChildren(const std::string& name);
    absl::StatusOr<std::vector<SnapshotRecord>> All();
    // The snapshots matching SQL condition `where` over `snapshots` (and `labels`) with
    // `params` bound to its `?`s in order, by id; All() when `where` is empty.
    absl::StatusOr<std::vector<SnapshotRecord>> Select(const std::string& where,
                                                       const std::vector<std::string>& params);

   private:
    friend class MetadataStore;
    explicit Txn(sqlite3* db) : db_(db) {}
    sqlite3* db_;
  };

  // Runs `fn` in one write transaction; commits when it returns OK, else rolls back.
  absl::Status Transact(const std::function<absl::Status(Txn&)>& fn);

 private:
  explicit MetadataStore(sqlite3* db) : db_(db) {}
  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_METADATA_STORE_H_
