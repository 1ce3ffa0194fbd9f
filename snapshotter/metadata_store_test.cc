// MetadataStore: snapshots and their labels (schema 2), and the migration of a
// schema 1 database (labels in a blob column) as an upgraded daemon finds it.
#include "snapshotter/metadata_store.h"

#include <sqlite3.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/coding.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

std::string FreshDb(const std::string& name) {
  std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  std::system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str());
  return dir + "/metadata.db";
}

// Runs `sql` on the database at `path` directly; returns the first column of the first
// row as text ("" when none).
std::string Sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::string out;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

SnapshotRecord Record(const std::string& name, Labels labels) {
  SnapshotRecord r;
  r.info.name = name;
  r.info.kind = SnapshotKind::kCommitted;
  r.info.created = r.info.updated = absl::FromUnixSeconds(1700000000);
  r.info.labels = std::move(labels);
  r.size = 10;
  r.inodes = 2;
  return r;
}

TEST(MetadataStoreTest, LabelsLiveInTheirOwnTable) {
  const std::string path = FreshDb("fresh");
  auto store = MetadataStore::Open(path);
  ASSERT_THAT(store, IsOk());
  int64_t a = 0;
  ASSERT_THAT((*store)->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    auto id = txn.Insert(Record("a", {{"containerd.io/snapshot.ref", "sha256:x"}, {"k", "v"}}));
    if (!id.ok()) return id.status();
    a = *id;
    return txn.Insert(Record("b", {})).status();
  }),
              IsOk());
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), "2");
  EXPECT_EQ(Sql(path, "SELECT COUNT(*) FROM labels"), "2");
  EXPECT_EQ(Sql(path, "SELECT value FROM labels WHERE key = 'k'"), "v");

  ASSERT_THAT((*store)->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    auto got = txn.Get("a");
    EXPECT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->info.labels.size(), 2u);
    SnapshotRecord r = **got;
    r.info.labels.erase("k");
    r.info.labels["new"] = "label";
    return txn.Update(r);
  }),
              IsOk());
  ASSERT_THAT((*store)->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    auto all = txn.All();
    EXPECT_TRUE(all.ok());
    EXPECT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].info.labels,
              (Labels{{"containerd.io/snapshot.ref", "sha256:x"}, {"new", "label"}}));
    EXPECT_TRUE((*all)[1].info.labels.empty());
    return txn.Delete(a);
  }),
              IsOk());
  EXPECT_EQ(Sql(path, "SELECT COUNT(*) FROM labels"), "0");  // deleted with the snapshot
}

// A schema 1 database (what clip wrote before this version) with labels in a blob.
void WriteSchema1(const std::string& path, const std::string& blob) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const char* sql :
       {"CREATE TABLE snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL UNIQUE, parent TEXT NOT NULL, kind INTEGER NOT NULL,"
        " created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL, labels BLOB NOT NULL,"
        " size INTEGER NOT NULL, inodes INTEGER NOT NULL)",
        "CREATE INDEX snapshots_parent ON snapshots(parent)", "PRAGMA user_version=1"}) {
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  }
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "INSERT INTO snapshots (name, parent, kind, created_ns, updated_ns,"
                               " labels, size, inodes) VALUES ('old', '', 3, 1, 2, ?1, 5, 1)",
                               -1, &s, nullptr),
            SQLITE_OK);
  sqlite3_bind_blob(s, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

std::string Schema1Labels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    PutFixed32(&out, static_cast<uint32_t>(k.size()));
    out += k;
    PutFixed32(&out, static_cast<uint32_t>(v.size()));
    out += v;
  }
  return out;
}

TEST(MetadataStoreTest, Schema1IsMigratedWithItsLabels) {
  const std::string path = FreshDb("v1");
  const Labels labels = {{"containerd.io/snapshot/clip.remote", "sha256:abc"}, {"x", ""}};
  WriteSchema1(path, Schema1Labels(labels));
  for (int open = 0; open < 2; ++open) {  // migrated once, then opened as schema 2
    auto store = MetadataStore::Open(path);
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
      auto got = txn.Get("old");
      EXPECT_TRUE(got.ok() && got->has_value());
      EXPECT_EQ((*got)->info.labels, labels);
      EXPECT_EQ((*got)->size, 5);
      return absl::OkStatus();
    }),
                IsOk());
  }
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), "2");
  EXPECT_EQ(Sql(path, "SELECT COUNT(*) FROM pragma_table_info('snapshots') WHERE name='labels'"),
            "0");
}

TEST(MetadataStoreTest, CorruptSchema1IsRefusedAndLeftAsItWas) {
  const std::string path = FreshDb("v1-corrupt");
  WriteSchema1(path, std::string("\x10\0\0\0short", 9));
  EXPECT_THAT(MetadataStore::Open(path), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), "1");
  EXPECT_EQ(Sql(path, "SELECT COUNT(*) FROM pragma_table_info('snapshots') WHERE name='labels'"),
            "1");
}

TEST(MetadataStoreTest, NewerSchemaIsRefused) {
  const std::string path = FreshDb("v3");
  Sql(path, "PRAGMA user_version=3");
  EXPECT_THAT(MetadataStore::Open(path), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace clip
