#include "cache/layer_doc_store.h"

#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

absl::Status RunShell(const std::string& command) {
  return std::system(command.c_str()) == 0 ? absl::OkStatus() : absl::InternalError(command);
}

std::string FreshDir(const std::string& name) {
  std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
  return dir;
}

TEST(LayerDocStoreTest, PutGetSizeRemove) {
  LayerDocStore store(FreshDir("docs"));
  ASSERT_THAT(store.Create(), IsOk());
  ASSERT_THAT(store.Create(), IsOk());  // already there: fine
  struct stat st;
  ASSERT_EQ(stat(store.dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const Digest a = Digest::Of("layer a"), b = Digest::Of("layer b");
  EXPECT_EQ(store.PathOf(a), absl::StrCat(store.dir(), "/", a.Hex()));
  auto missing = store.Get(a);
  ASSERT_THAT(missing, IsOk());
  EXPECT_FALSE(missing->has_value());
  EXPECT_FALSE(store.Contains(a));

  ASSERT_THAT(store.Put(a, "index of a"), IsOk());
  auto got = store.Get(a);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "index of a");
  EXPECT_EQ(store.SizeOf(a), 10u);
  EXPECT_FALSE(store.Contains(b));
  ASSERT_THAT(store.Put(a, "newer"), IsOk());  // replaced whole
  EXPECT_EQ(**store.Get(a), "newer");

  EXPECT_TRUE(store.Remove(a));
  EXPECT_FALSE(store.Remove(a));
  EXPECT_FALSE(store.Get(a)->has_value());
}

TEST(LayerDocStoreTest, ErrorsAreNotMisses) {
  LayerDocStore store(FreshDir("docs-errors"));
  ASSERT_THAT(store.Create(), IsOk());
  const Digest a = Digest::Of("layer a");
  ASSERT_EQ(mkdir(store.PathOf(a).c_str(), 0700), 0);  // a directory where the file goes
  EXPECT_THAT(store.Get(a), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(store.Contains(a));
  EXPECT_THAT(store.Put(a, "x"), StatusIs(absl::StatusCode::kInvalidArgument));

  LayerDocStore orphan(FreshDir("no-parent") + "/below");
  EXPECT_THAT(orphan.Create(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(orphan.Put(a, "x"), StatusIs(absl::StatusCode::kNotFound));
}

// The origin record: written with the document, read back, dropped by a Put without
// one and by Remove; a document changed on disk no longer hashes to its record.
TEST(LayerDocStoreTest, OriginRecordTracksTheDocument) {
  LayerDocStore store(FreshDir("docs-origin"));
  ASSERT_THAT(store.Create(), IsOk());
  const Digest a = Digest::Of("layer a");
  EXPECT_FALSE(store.RecordOf(a).has_value());
  ASSERT_THAT(store.Put(a, "index of a", "built"), IsOk());
  std::optional<LayerDocStore::Record> record = store.RecordOf(a);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->digest, Digest::Of("index of a"));
  EXPECT_EQ(record->origin, "built");

  ASSERT_THAT(RunShell("printf forged > " + store.PathOf(a)), IsOk());
  EXPECT_NE(Digest::Of(**store.Get(a)), store.RecordOf(a)->digest);

  ASSERT_THAT(store.Put(a, "index of a"), IsOk());  // no origin: none recorded
  EXPECT_FALSE(store.RecordOf(a).has_value());
  ASSERT_THAT(store.Put(a, "index of a", "bound"), IsOk());
  ASSERT_THAT(RunShell("echo garbage > " + store.PathOf(a) + ".origin"), IsOk());
  EXPECT_FALSE(store.RecordOf(a).has_value());  // unreadable: no known origin
  ASSERT_THAT(store.Put(a, "index of a", "bound"), IsOk());
  EXPECT_TRUE(store.Remove(a));
  EXPECT_FALSE(store.RecordOf(a).has_value());
}

}  // namespace
}  // namespace clip
