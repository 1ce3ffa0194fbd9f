#include "cache/layer_doc_store.h"

#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

std::string FreshDir(const std::string& name) {
  std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
  return dir;
}

TEST(LayerDocStoreTest, PutGetSizeRemove) {
  LayerDocStore store(FreshDir("docs"));
  ASSERT_TRUE(store.Create().ok());
  ASSERT_TRUE(store.Create().ok());  // already there: fine
  struct stat st;
  ASSERT_EQ(stat(store.dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const Digest a = Digest::Of("layer a"), b = Digest::Of("layer b");
  EXPECT_EQ(store.PathOf(a), absl::StrCat(store.dir(), "/", a.Hex()));
  auto missing = store.Get(a);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
  EXPECT_FALSE(store.Contains(a));

  ASSERT_TRUE(store.Put(a, "index of a").ok());
  auto got = store.Get(a);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "index of a");
  EXPECT_EQ(store.SizeOf(a), 10u);
  EXPECT_FALSE(store.Contains(b));
  ASSERT_TRUE(store.Put(a, "newer").ok());  // replaced whole
  EXPECT_EQ(**store.Get(a), "newer");

  EXPECT_TRUE(store.Remove(a));
  EXPECT_FALSE(store.Remove(a));
  EXPECT_FALSE(store.Get(a)->has_value());
}

TEST(LayerDocStoreTest, ErrorsAreNotMisses) {
  LayerDocStore store(FreshDir("docs-errors"));
  ASSERT_TRUE(store.Create().ok());
  const Digest a = Digest::Of("layer a");
  ASSERT_EQ(mkdir(store.PathOf(a).c_str(), 0700), 0);  // a directory where the file goes
  EXPECT_FALSE(store.Get(a).ok());
  EXPECT_FALSE(store.Contains(a));
  EXPECT_FALSE(store.Put(a, "x").ok());

  LayerDocStore orphan(FreshDir("no-parent") + "/below");
  EXPECT_FALSE(orphan.Create().ok());
  EXPECT_FALSE(orphan.Put(a, "x").ok());
}

}  // namespace
}  // namespace clip
