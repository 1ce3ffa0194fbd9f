// containerd filters over snapshots: Match, and ToSql as a prefilter over the metadata
// store that never drops a snapshot Match keeps (and does narrow the rows).
#include "snapshotter/filters.h"

#include <cstdlib>
#include <filesystem>
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
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
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
  // Go regexp syntax (RE2): unanchored, flags, Perl and Unicode classes.
  Check({"name~=xtr"}, {"extract-1"}, 4);
  Check({R"(name~=(?i)^EXTRACT-\d$)"}, {"extract-1"}, 4);
  Check({R"(labels.tier~=^\pL+ve)"}, {"extract-1"}, 4);
}

SnapshotInfo Named(std::string name) {
  SnapshotInfo info;
  info.name = std::move(name);
  return info;
}

// std::regex recursed over the groups and overflowed the stack compiling this (~40 KB,
// well inside a gRPC message). RE2 either compiles it within its memory bound or
// refuses it; either is fine, a crash is not.
TEST(FilterRegexTest, DeeplyNestedGroupsNeverCrash) {
  constexpr int kDepth = 20000;
  for (std::string open : {"(", "(?:"}) {
    SCOPED_TRACE(open);
    std::string pattern;
    for (int i = 0; i < kDepth; ++i) pattern += open;
    pattern += "a" + std::string(kDepth, ')');
    auto f = SnapshotFilter::Parse({"name~=" + pattern});
    if (!f.ok()) {
      EXPECT_THAT(f, StatusIs(absl::StatusCode::kInvalidArgument));
      continue;
    }
    EXPECT_TRUE(f->Match(Named("xay")));
    EXPECT_FALSE(f->Match(Named("xy")));
  }
}

// std::regex recursed once per character matching this and crashed over a 100 KB name.
TEST(FilterRegexTest, LongValueMatchesInLinearTime) {
  auto f = SnapshotFilter::Parse({"name~=^(a|b)*$"});
  ASSERT_THAT(f, IsOk());
  std::string name(100 << 10, 'a');
  for (size_t i = 0; i < name.size(); i += 3) name[i] = 'b';
  EXPECT_TRUE(f->Match(Named(name)));
  EXPECT_FALSE(f->Match(Named(name + "c")));
  SnapshotInfo labelled;
  labelled.labels["big"] = name;
  auto g = SnapshotFilter::Parse({"labels.big~=^(a|b)*$"});
  ASSERT_THAT(g, IsOk());
  EXPECT_TRUE(g->Match(labelled));
}

TEST(FilterRegexTest, InvalidExpressionIsInvalidArgument) {
  for (const char* bad : {
           "name~=(",                // unclosed
           "name~=a)",               // unopened
           "name~=[a",               // unclosed class
           "name~=*a",               // nothing to repeat
           R"(name~=(a)\1)",         // backreference: neither Go nor RE2
           "name~=(?=a)",            // lookahead: neither Go nor RE2
           "name~=a{1001}",          // repetition over RE2's (and Go's) 1000
           "name~=((a{100}){100})",  // nested repetition over the same bound
           "name~=\\pXyz",           // unknown class
       }) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(SnapshotFilter::Parse({bad}), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  // A program over the memory bound: valid syntax, refused rather than allocated.
  EXPECT_THAT(SnapshotFilter::Parse({R"(name~=\pL{1000})"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FilterRegexTest, ExpressionsPerParseAreBounded) {
  std::vector<std::string> filters(SnapshotFilter::kMaxExpressions, "name~=a");
  EXPECT_THAT(SnapshotFilter::Parse(filters), IsOk());
  filters.back() += ",labels.x~=b";
  EXPECT_THAT(SnapshotFilter::Parse(filters), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FilterParseTest, MalformedIsInvalidArgument) {
  EXPECT_THAT(SnapshotFilter::Parse({"name=="}), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace clip
