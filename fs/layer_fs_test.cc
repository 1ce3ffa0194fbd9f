// LayerFs without a mount: the answers the FUSE adapter relays, on a layer made by GNU
// tar (testdata of //index).
#include "fs/layer_fs.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "absl/strings/str_cat.h"
#include "common/file_blob_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "index/layer_indexer.h"
#include "index/span_inflater.h"
#include "index/span_source.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

class LayerFsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("layers"));
    std::string script = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                      "/index/testdata/make_layers.sh");
    ASSERT_THAT(testing::RunCommand("CLIP_FIXTURES_SKIP_REAL=1 bash " + script + " " + *dir_ +
                                    " >/dev/null 2>&1"),
                IsOk());
    blob_ = FileBlobReader::Open(*dir_ + "/posix.tar.gz").value().release();
    auto index = std::make_shared<const index::v1::LayerIndex>(BuildLayerIndex(*blob_).value());
    fs_ = new LayerFs(index, std::make_shared<SpanInflater>(index, *blob_));
  }
  static Attr Resolve(const std::string& path) {
    uint64_t ino = kRootInode;
    size_t start = 0;
    while (start < path.size()) {
      size_t slash = path.find('/', start);
      std::string part = path.substr(start, slash - start);
      auto a = fs_->Lookup(ino, part);
      EXPECT_THAT(a, IsOk()) << path << ": " << a.status();
      if (!a.ok()) return Attr{};
      ino = a->ino;
      start = slash == std::string::npos ? path.size() : slash + 1;
    }
    return *fs_->GetAttr(ino);
  }
  static std::string* dir_;
  static BlobReader* blob_;
  static LayerFs* fs_;
};
std::string* LayerFsTest::dir_;
BlobReader* LayerFsTest::blob_;
LayerFs* LayerFsTest::fs_;

TEST_F(LayerFsTest, AttributesAndInodes) {
  Attr root = *fs_->GetAttr(kRootInode);
  EXPECT_TRUE(S_ISDIR(root.mode));
  Attr hello = Resolve("etc/hello.txt");
  EXPECT_TRUE(S_ISREG(hello.mode));
  EXPECT_EQ(hello.size, 6u);
  EXPECT_EQ(hello.mtime_nsec, 123456789u);
  EXPECT_EQ(hello.nlink, 3u);  // two hardlinks in usr/bin
  Attr hard = Resolve("usr/bin/hard1");
  EXPECT_EQ(hard.ino, hello.ino);  // all names share one inode
  EXPECT_EQ(Resolve("setuid").mode & 07777, 04755u);
  Attr dev = Resolve("blockdev");
  EXPECT_TRUE(S_ISBLK(dev.mode));
  EXPECT_EQ(major(dev.rdev), 7u);
  Attr wh = Resolve("removed/gone");
  EXPECT_TRUE(S_ISCHR(wh.mode));
  EXPECT_EQ(wh.rdev, 0u);
  Attr etc = Resolve("etc");
  EXPECT_EQ(etc.nlink, 3u);  // ".", its entry in "/", and etc/app's ".."
  EXPECT_EQ(fs_->Lookup(kRootInode, "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fs_->Lookup(hello.ino, "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fs_->GetAttr(999999).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fs_->PathOf(hello.ino), "/etc/hello.txt");
}

TEST_F(LayerFsTest, ReadDirReadLinkReadAndXattrs) {
  auto entries = fs_->ReadDir(Resolve("usr/bin").ino);
  ASSERT_THAT(entries, IsOk());
  std::vector<std::string> names;
  for (const auto& e : *entries) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"abs-link", "hard1", "hard2", "random3m", "random700k",
                                             "rel-link"}));
  EXPECT_EQ(*fs_->ReadLink(Resolve("usr/bin/rel-link").ino), "../etc/hello.txt");
  EXPECT_THAT(fs_->ReadLink(Resolve("etc/hello.txt").ino),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::string buf(10, '\0');
  auto n = fs_->Read(Resolve("etc/hello.txt").ino, 1, absl::MakeSpan(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(buf.substr(0, *n), "ello\n");
  EXPECT_EQ(*fs_->Read(Resolve("etc/hello.txt").ino, 100, absl::MakeSpan(buf)), 0u);
  EXPECT_THAT(fs_->Open(Resolve("etc").ino), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*fs_->GetXattr(Resolve("etc/hello.txt").ino, "user.comment"), "hi there");
  EXPECT_EQ(fs_->GetXattr(Resolve("etc/hello.txt").ino, "user.none").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*fs_->GetXattr(Resolve("opaque-dir").ino, kOpaqueXattr), "y");
  auto list = fs_->ListXattr(Resolve("opaque-dir").ino);
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(*list, std::vector<std::string>{kOpaqueXattr});
  EXPECT_EQ(fs_->Lookup(Resolve("opaque-dir").ino, ".wh..wh..opq").status().code(),
            absl::StatusCode::kNotFound);  // the marker is not a file
  EXPECT_EQ(fs_->Stats().files, 16u);      // regular files; hardlinks and whiteouts are not
}

// Names are bytes: lookup, readdir, readlink and xattr names that are not UTF-8 are
// served byte for byte.
TEST_F(LayerFsTest, NamesThatAreNotUtf8) {
  Attr dir = Resolve("bytes-\xff\xfe");
  EXPECT_TRUE(S_ISDIR(dir.mode));
  auto entries = fs_->ReadDir(dir.ino);
  ASSERT_THAT(entries, IsOk());
  std::vector<std::string> names;
  for (const auto& e : *entries) names.push_back(e.name);
  EXPECT_EQ(names, std::vector<std::string>{"\xe9t\xe9"});
  std::string buf(16, '\0');
  auto n = fs_->Read(Resolve("bytes-\xff\xfe/\xe9t\xe9").ino, 0, absl::MakeSpan(buf));
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(buf.substr(0, *n), "inside\n");
  EXPECT_EQ(*fs_->ReadLink(Resolve("link-\xe0").ino), "caf\xe9");
  Attr file = Resolve("caf\xe9");
  EXPECT_EQ(Resolve("hard-\xe9").ino, file.ino);
  auto xattrs = fs_->ListXattr(file.ino);
  ASSERT_THAT(xattrs, IsOk());
  EXPECT_EQ(*xattrs, std::vector<std::string>{"user.na\xefve"});
  EXPECT_EQ(*fs_->GetXattr(file.ino, "user.na\xefve"), std::string("\xff\x00value", 7));
}

// has_xattrs: true when an entry has an xattr or is opaque, false for a layer with
// neither (the adapter then answers getxattr ENOSYS once for the whole mount).
TEST_F(LayerFsTest, HasXattrs) {
  EXPECT_TRUE(fs_->has_xattrs());
  auto plain = std::make_shared<index::v1::LayerIndex>();
  plain->add_entries()->set_type(index::v1::DIRECTORY);
  index::v1::Entry* f = plain->add_entries();
  f->set_type(index::v1::REGULAR);
  f->set_name("f");
  EXPECT_FALSE(LayerFs(plain, nullptr).has_xattrs());
  f->add_xattrs()->set_key("user.k");
  EXPECT_TRUE(LayerFs(plain, nullptr).has_xattrs());
  f->clear_xattrs();
  plain->mutable_entries(0)->set_opaque(true);
  EXPECT_TRUE(LayerFs(plain, nullptr).has_xattrs());
}

}  // namespace
}  // namespace clip
