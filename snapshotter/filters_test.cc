// containerd filters over snapshots: Match, and ToSql as a prefilter over the metadata
// store that never drops a snapshot Match keeps (and does narrow the rows).
#include "snapshotter/filters.h"

#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "snapshotter/metadata_store.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

class FilterSqlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/filters");
    std::system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str());
    auto store = MetadataStore::Open(dir + "/metadata.db");
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    struct Row {
      const char* name;
      const char* parent;
      SnapshotKind kind;
      Labels labels;
    };
    const Row rows[] = {
        {"base", "", SnapshotKind::kCommitted, {{"containerd.io/snapshot.ref", "sha256:a"}}},
        {"app",
         "base",
         SnapshotKind::kCommitted,
         {{"containerd.io/snapshot.ref", "sha256:b"}, {"tier", "gold"}}},
        {"extract-1", "app", SnapshotKind::kActive, {{"tier", "silver"}}},
        {"view-1", "app", SnapshotKind::kView, {}},
    };
    ASSERT_THAT(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
      for (const Row& r : rows) {
        SnapshotRecord rec;
        rec.info.name = r.name;
        rec.info.parent = r.parent;
        rec.info.kind = r.kind;
        rec.info.labels = r.labels;
        absl::StatusOr<int64_t> id = txn.Insert(rec);
        if (!id.ok()) return id.status();
      }
      return absl::OkStatus();
    }),
                IsOk());
  }

  // Names Match keeps over every row, and over the rows the SQL prefilter selects
  // (which must be the same), and how many rows the prefilter selected.
  void Check(const std::vector<std::string>& filters, std::set<std::string> want, size_t max_rows) {
    SCOPED_TRACE(absl::StrCat("filters: ", filters.empty() ? "(none)" : filters[0]));
    auto f = SnapshotFilter::Parse(filters);
    ASSERT_THAT(f, IsOk());
    SnapshotFilter::Sql sql = f->ToSql();
    std::set<std::string> from_all, from_sql;
    size_t rows = 0;
    ASSERT_THAT(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
      auto all = txn.All();
      if (!all.ok()) return all.status();
      for (const auto& r : *all) {
        if (f->Match(r.info)) from_all.insert(r.info.name);
      }
      auto some = txn.Select(sql.where, sql.params);
      if (!some.ok()) return some.status();
      rows = some->size();
      for (const auto& r : *some) {
        if (f->Match(r.info)) from_sql.insert(r.info.name);
      }
      return absl::OkStatus();
    }),
                IsOk());
    EXPECT_EQ(from_all, want);
    EXPECT_EQ(from_sql, want);
    EXPECT_LE(rows, max_rows) << sql.where;
  }

  std::unique_ptr<MetadataStore> store_;
};

TEST_F(FilterSqlTest, PrefilterKeepsEveryMatchAndNarrows) {
  Check({}, {"base", "app", "extract-1", "view-1"}, 4);
  Check({"name==app"}, {"app"}, 1);
  Check({"parent==app"}, {"extract-1", "view-1"}, 2);
  Check({"parent!=app"}, {"base", "app"}, 2);
  Check({R"(labels."containerd.io/snapshot.ref"==sha256:b)"}, {"app"}, 1);
  Check({"labels.containerd.io/snapshot.ref"}, {"base", "app"}, 2);  // dotted, unquoted
  Check({"labels.tier!=gold"}, {"base", "extract-1", "view-1"}, 3);  // absent or other
  Check({"labels"}, {"base", "app", "extract-1"}, 3);
  Check({"labels.tier==gold", "name==base"}, {"app", "base"}, 2);  // alternatives
  Check({"labels.tier,parent==app"}, {"extract-1"}, 1);            // all of them
  // Left to Match: kinds and expressions (the SQL admits more rows, never fewer).
  Check({"kind==committed"}, {"base", "app"}, 4);
  Check({"name~=^extract-"}, {"extract-1"}, 4);
  Check({"kind==view,parent==app"}, {"view-1"}, 2);
  Check({"name~=^v", "labels.tier==silver"}, {"view-1", "extract-1"}, 4);
}

TEST(FilterParseTest, MalformedIsInvalidArgument) {
  EXPECT_THAT(SnapshotFilter::Parse({"name=="}), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace clip
