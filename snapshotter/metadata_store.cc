#include "snapshotter/metadata_store.h"

#include <sqlite3.h>

#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/coding.h"
#include "common/status_macros.h"

namespace clip {
namespace {

// What an SQLite result means to a caller: a damaged file is kDataLoss, a full disk
// kResourceExhausted, a file it may not write kPermissionDenied.
absl::StatusCode CodeOf(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  return absl::Status(CodeOf(db ? sqlite3_errcode(db) : SQLITE_NOMEM),
                      absl::StrCat("metadata ", what, ": ", sqlite3_errmsg(db)));
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return absl::Status(CodeOf(rc), absl::StrCat("metadata: ", msg));
  }
  return absl::OkStatus();
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return s_ != nullptr; }
  sqlite3_stmt* get() { return s_; }
  void Text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Blob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  // Ready to run again with new bindings.
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  absl::Status Done(absl::string_view what) {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_DONE) return absl::OkStatus();
    if (rc == SQLITE_CONSTRAINT) return absl::AlreadyExistsError(absl::StrCat(what, ": exists"));
    return SqlError(db_, what);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// Schema 1 kept labels in a blob column: pairs of <u32 length><bytes>, little-endian.
// Read only to migrate such a database.
absl::StatusOr<Labels> DecodeLabels(const void* data, int size) {
  Labels out;
  const char* p = static_cast<const char*>(data);
  size_t n = static_cast<size_t>(size), pos = 0;
  auto get = [&](std::string* s) {
    if (n - pos < 4) return false;
    uint32_t len = DecodeFixed32(p + pos);
    pos += 4;
    if (n - pos < len) return false;
    s->assign(p + pos, len);
    pos += len;
    return true;
  };
  while (pos < n) {
    std::string k, v;
    if (!get(&k) || !get(&v)) return absl::DataLossError("metadata: corrupt labels");
    out[k] = v;
  }
  return out;
}

constexpr char kColumns[] = "id, name, parent, kind, created_ns, updated_ns, size, inodes";

// With its length: a name is bytes, and may hold a NUL (containerd's keys can).
std::string ColumnText(sqlite3_stmt* s, int i) {
  return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, i)),
                     static_cast<size_t>(sqlite3_column_bytes(s, i)));
}

SnapshotRecord Row(sqlite3_stmt* s) {
  SnapshotRecord r;
  r.id = sqlite3_column_int64(s, 0);
  r.info.name = ColumnText(s, 1);
  r.info.parent = ColumnText(s, 2);
  r.info.kind = static_cast<SnapshotKind>(sqlite3_column_int(s, 3));
  r.info.created = absl::FromUnixNanos(sqlite3_column_int64(s, 4));
  r.info.updated = absl::FromUnixNanos(sqlite3_column_int64(s, 5));
  r.size = sqlite3_column_int64(s, 6);
  r.inodes = sqlite3_column_int64(s, 7);
  return r;
}

// The labels of the snapshots whose ids `ids_sql` (a SELECT of ids, with `params`)
// gives, by snapshot id; every snapshot's when `ids_sql` is empty.
absl::StatusOr<std::map<int64_t, Labels>> LoadLabels(sqlite3* db, const std::string& ids_sql,
                                                     const std::vector<std::string>& params) {
  Stmt s(db,
         absl::StrCat("SELECT snapshot_id, key, value FROM labels",
                      ids_sql.empty() ? "" : absl::StrCat(" WHERE snapshot_id IN (", ids_sql, ")"))
             .c_str());
  if (!s.ok()) return SqlError(db, "prepare");
  for (size_t i = 0; i < params.size(); ++i) s.Text(static_cast<int>(i) + 1, params[i]);
  std::map<int64_t, Labels> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    out[sqlite3_column_int64(s.get(), 0)][ColumnText(s.get(), 1)] = ColumnText(s.get(), 2);
  }
  if (rc != SQLITE_DONE) return SqlError(db, "labels");
  return out;
}

absl::Status SaveLabels(sqlite3* db, int64_t id, const Labels& labels) {
  Stmt del(db, "DELETE FROM labels WHERE snapshot_id=?1");
  if (!del.ok()) return SqlError(db, "prepare");
  del.Int(1, id);
  CLIP_RETURN_IF_ERROR(del.Done("labels"));
  if (labels.empty()) return absl::OkStatus();
  Stmt ins(db, "INSERT INTO labels (snapshot_id, key, value) VALUES (?1, ?2, ?3)");
  if (!ins.ok()) return SqlError(db, "prepare");
  for (const auto& [k, v] : labels) {
    ins.Reset();
    ins.Int(1, id);
    ins.Text(2, k);
    ins.Text(3, v);
    CLIP_RETURN_IF_ERROR(ins.Done(absl::StrCat("label ", k)));
  }
  return absl::OkStatus();
}

constexpr char kCreateLabels[] =
    "CREATE TABLE IF NOT EXISTS labels ("
    " snapshot_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (snapshot_id, key)) WITHOUT ROWID";

// Schema 1 -> 2: every label blob becomes rows of the labels table, then the column
// goes. One transaction: a crash leaves schema 1 whole, migrated again on next open.
absl::Status MigrateFrom1(sqlite3* db) {
  CLIP_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
  absl::Status st = [&]() -> absl::Status {
    CLIP_RETURN_IF_ERROR(Exec(db, kCreateLabels));
    std::vector<std::pair<int64_t, Labels>> rows;
    {
      Stmt s(db, "SELECT id, labels FROM snapshots");
      if (!s.ok()) return SqlError(db, "prepare");
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        CLIP_ASSIGN_OR_RETURN(Labels l, DecodeLabels(sqlite3_column_blob(s.get(), 1),
                                                     sqlite3_column_bytes(s.get(), 1)));
        rows.emplace_back(sqlite3_column_int64(s.get(), 0), std::move(l));
      }
      if (rc != SQLITE_DONE) return SqlError(db, "migrate");
    }
    for (const auto& [id, labels] : rows) CLIP_RETURN_IF_ERROR(SaveLabels(db, id, labels));
    CLIP_RETURN_IF_ERROR(Exec(db, "ALTER TABLE snapshots DROP COLUMN labels"));
    return Exec(db, "PRAGMA user_version=2");
  }();
  if (!st.ok()) {
    (void)Exec(db, "ROLLBACK");
    return st;
  }
  return Exec(db, "COMMIT");
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetadataStore>> MetadataStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    absl::Status s = SqlError(db, absl::StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  absl::Status st = [&]() -> absl::Status {
    CLIP_RETURN_IF_ERROR(Exec(db, "PRAGMA journal_mode=WAL"));
    CLIP_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=FULL"));
    int64_t version = 0;
    {
      Stmt v(db, "PRAGMA user_version");
      if (!v.ok() || sqlite3_step(v.get()) != SQLITE_ROW) return SqlError(db, "user_version");
      version = sqlite3_column_int64(v.get(), 0);
    }
    if (version == 1) return MigrateFrom1(db);
    if (version > 2) {
      return absl::FailedPreconditionError(
          absl::StrCat("metadata: schema version ", version, " is newer than this build's (2)"));
    }
    for (const char* sql : {"CREATE TABLE IF NOT EXISTS snapshots ("
                            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                            " name TEXT NOT NULL UNIQUE, parent TEXT NOT NULL,"
                            " kind INTEGER NOT NULL, created_ns INTEGER NOT NULL,"
                            " updated_ns INTEGER NOT NULL,"
                            " size INTEGER NOT NULL, inodes INTEGER NOT NULL)",
                            "CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent)",
                            kCreateLabels, "PRAGMA user_version=2"}) {
      CLIP_RETURN_IF_ERROR(Exec(db, sql));
    }
    return absl::OkStatus();
  }();
  if (!st.ok()) {
    sqlite3_close(db);
    if (st.code() == absl::StatusCode::kDataLoss) {
      return absl::DataLossError(
          absl::StrCat(path, " is damaged (", st.message(),
                       "): it holds every snapshot's record, so it is not replaced. Restore "
                       "it, or move it aside to start with no snapshots (then remove the "
                       "images that use this snapshotter from containerd too)"));
    }
    return absl::Status(st.code(), absl::StrCat(path, ": ", st.message()));
  }
  return std::unique_ptr<MetadataStore>(new MetadataStore(db));
}

MetadataStore::~MetadataStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status MetadataStore::Transact(const std::function<absl::Status(Txn&)>& fn) {
  absl::MutexLock lock(&mu_);
  CLIP_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE"));
  Txn txn(db_);
  absl::Status s = fn(txn);
  if (!s.ok()) {
    (void)Exec(db_, "ROLLBACK");
    return s;
  }
  absl::Status c = Exec(db_, "COMMIT");
  if (!c.ok()) (void)Exec(db_, "ROLLBACK");
  return c;
}

absl::StatusOr<std::optional<SnapshotRecord>> MetadataStore::Txn::Get(const std::string& name) {
  Stmt s(db_, absl::StrCat("SELECT ", kColumns, " FROM snapshots WHERE name = ?1").c_str());
  if (!s.ok()) return SqlError(db_, "prepare");
  s.Text(1, name);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return SqlError(db_, "get");
  SnapshotRecord r = Row(s.get());
  CLIP_ASSIGN_OR_RETURN(auto labels,
                        LoadLabels(db_, "SELECT CAST(?1 AS INTEGER)", {std::to_string(r.id)}));
  r.info.labels = std::move(labels[r.id]);
  return r;
}

absl::StatusOr<int64_t> MetadataStore::Txn::Insert(const SnapshotRecord& r) {
  Stmt s(db_,
         "INSERT INTO snapshots (name, parent, kind, created_ns, updated_ns, size, inodes)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (!s.ok()) return SqlError(db_, "prepare");
  s.Text(1, r.info.name);
  s.Text(2, r.info.parent);
  s.Int(3, static_cast<int64_t>(r.info.kind));
  s.Int(4, absl::ToUnixNanos(r.info.created));
  s.Int(5, absl::ToUnixNanos(r.info.updated));
  s.Int(6, r.size);
  s.Int(7, r.inodes);
  CLIP_RETURN_IF_ERROR(s.Done(absl::StrCat("snapshot ", r.info.name)));
  const int64_t id = sqlite3_last_insert_rowid(db_);
  CLIP_RETURN_IF_ERROR(SaveLabels(db_, id, r.info.labels));
  return id;
}

absl::Status MetadataStore::Txn::Update(const SnapshotRecord& r) {
  Stmt s(db_,
         "UPDATE snapshots SET name=?2, parent=?3, kind=?4, created_ns=?5, updated_ns=?6,"
         " size=?7, inodes=?8 WHERE id=?1");
  if (!s.ok()) return SqlError(db_, "prepare");
  s.Int(1, r.id);
  s.Text(2, r.info.name);
  s.Text(3, r.info.parent);
  s.Int(4, static_cast<int64_t>(r.info.kind));
  s.Int(5, absl::ToUnixNanos(r.info.created));
  s.Int(6, absl::ToUnixNanos(r.info.updated));
  s.Int(7, r.size);
  s.Int(8, r.inodes);
  CLIP_RETURN_IF_ERROR(s.Done(absl::StrCat("snapshot ", r.info.name)));
  return SaveLabels(db_, r.id, r.info.labels);
}

absl::Status MetadataStore::Txn::Delete(int64_t id) {
  CLIP_RETURN_IF_ERROR(SaveLabels(db_, id, {}));
  Stmt s(db_, "DELETE FROM snapshots WHERE id=?1");
  if (!s.ok()) return SqlError(db_, "prepare");
  s.Int(1, id);
  return s.Done("delete");
}

absl::StatusOr<int64_t> MetadataStore::Txn::CountChildren(const std::string& name) {
  Stmt s(db_, "SELECT COUNT(*) FROM snapshots WHERE parent=?1");
  if (!s.ok()) return SqlError(db_, "prepare");
  s.Text(1, name);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return SqlError(db_, "count");
  return sqlite3_column_int64(s.get(), 0);
}

absl::StatusOr<std::vector<SnapshotRecord>> MetadataStore::Txn::All() { return Select("", {}); }

absl::StatusOr<std::vector<SnapshotRecord>> MetadataStore::Txn::Select(
    const std::string& where, const std::vector<std::string>& params) {
  Stmt s(db_, absl::StrCat("SELECT ", kColumns, " FROM snapshots",
                           where.empty() ? "" : absl::StrCat(" WHERE ", where), " ORDER BY id")
                  .c_str());
  if (!s.ok()) return SqlError(db_, "prepare");
  for (size_t i = 0; i < params.size(); ++i) s.Text(static_cast<int>(i) + 1, params[i]);
  std::vector<SnapshotRecord> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(Row(s.get()));
  if (rc != SQLITE_DONE) return SqlError(db_, "list");
  // Only the selected snapshots' labels: the same condition, as a subquery.
  CLIP_ASSIGN_OR_RETURN(
      auto labels,
      LoadLabels(db_, where.empty() ? "" : absl::StrCat("SELECT id FROM snapshots WHERE ", where),
                 params));
  for (SnapshotRecord& r : out) r.info.labels = std::move(labels[r.id]);
  return out;
}

}  // namespace clip
