#include "snapshotter/metadata_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "common/coding.h"
#include "common/status_macros.h"

namespace clip {
namespace {

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("metadata ", what, ": ", sqlite3_errmsg(db)));
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("metadata: ", msg));
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

std::string EncodeLabels(const Labels& labels) {
  std::string out;
  auto put = [&](const std::string& s) {
    uint32_t n = static_cast<uint32_t>(s.size());
    PutFixed32(&out, n);
    out += s;
  };
  for (const auto& [k, v] : labels) {
    put(k);
    put(v);
  }
  return out;
}

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

constexpr char kColumns[] = "id, name, parent, kind, created_ns, updated_ns, labels, size, inodes";

absl::StatusOr<SnapshotRecord> Row(sqlite3_stmt* s) {
  SnapshotRecord r;
  r.id = sqlite3_column_int64(s, 0);
  r.info.name = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
  r.info.parent = reinterpret_cast<const char*>(sqlite3_column_text(s, 2));
  r.info.kind = static_cast<SnapshotKind>(sqlite3_column_int(s, 3));
  r.info.created = absl::FromUnixNanos(sqlite3_column_int64(s, 4));
  r.info.updated = absl::FromUnixNanos(sqlite3_column_int64(s, 5));
  CLIP_ASSIGN_OR_RETURN(r.info.labels,
                        DecodeLabels(sqlite3_column_blob(s, 6), sqlite3_column_bytes(s, 6)));
  r.size = sqlite3_column_int64(s, 7);
  r.inodes = sqlite3_column_int64(s, 8);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetadataStore>> MetadataStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    absl::Status s = SqlError(db, "open");
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                          "CREATE TABLE IF NOT EXISTS snapshots ("
                          " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                          " name TEXT NOT NULL UNIQUE, parent TEXT NOT NULL,"
                          " kind INTEGER NOT NULL, created_ns INTEGER NOT NULL,"
                          " updated_ns INTEGER NOT NULL, labels BLOB NOT NULL,"
                          " size INTEGER NOT NULL, inodes INTEGER NOT NULL)",
                          "CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent)",
                          "PRAGMA user_version=1"}) {
    absl::Status s = Exec(db, sql);
    if (!s.ok()) {
      sqlite3_close(db);
      return s;
    }
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
  CLIP_ASSIGN_OR_RETURN(SnapshotRecord r, Row(s.get()));
  return r;
}

absl::StatusOr<int64_t> MetadataStore::Txn::Insert(const SnapshotRecord& r) {
  Stmt s(db_,
         "INSERT INTO snapshots (name, parent, kind, created_ns, updated_ns, labels, size, inodes)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!s.ok()) return SqlError(db_, "prepare");
  s.Text(1, r.info.name);
  s.Text(2, r.info.parent);
  s.Int(3, static_cast<int64_t>(r.info.kind));
  s.Int(4, absl::ToUnixNanos(r.info.created));
  s.Int(5, absl::ToUnixNanos(r.info.updated));
  s.Blob(6, EncodeLabels(r.info.labels));
  s.Int(7, r.size);
  s.Int(8, r.inodes);
  CLIP_RETURN_IF_ERROR(s.Done(absl::StrCat("snapshot ", r.info.name)));
  return sqlite3_last_insert_rowid(db_);
}

absl::Status MetadataStore::Txn::Update(const SnapshotRecord& r) {
  Stmt s(db_,
         "UPDATE snapshots SET name=?2, parent=?3, kind=?4, created_ns=?5, updated_ns=?6,"
         " labels=?7, size=?8, inodes=?9 WHERE id=?1");
  if (!s.ok()) return SqlError(db_, "prepare");
  s.Int(1, r.id);
  s.Text(2, r.info.name);
  s.Text(3, r.info.parent);
  s.Int(4, static_cast<int64_t>(r.info.kind));
  s.Int(5, absl::ToUnixNanos(r.info.created));
  s.Int(6, absl::ToUnixNanos(r.info.updated));
  s.Blob(7, EncodeLabels(r.info.labels));
  s.Int(8, r.size);
  s.Int(9, r.inodes);
  return s.Done(absl::StrCat("snapshot ", r.info.name));
}

absl::Status MetadataStore::Txn::Delete(int64_t id) {
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

absl::StatusOr<std::vector<SnapshotRecord>> MetadataStore::Txn::All() {
  Stmt s(db_, absl::StrCat("SELECT ", kColumns, " FROM snapshots ORDER BY id").c_str());
  if (!s.ok()) return SqlError(db_, "prepare");
  std::vector<SnapshotRecord> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    CLIP_ASSIGN_OR_RETURN(SnapshotRecord r, Row(s.get()));
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "list");
  return out;
}

}  // namespace clip
