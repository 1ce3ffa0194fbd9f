#include "snapshotter/image_fs_link.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

std::string Target(const std::string& link) {
  char buf[4096];
  ssize_t n = readlink(link.c_str(), buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

class ImageFsLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/imgfsXXXXXX";
    dir_ = mkdtemp(tmpl);
    root_ = dir_ + "/clip-root";
    mkdir(root_.c_str(), 0700);
  }
  void TearDown() override { (void)system(("rm -rf " + dir_).c_str()); }
  std::string dir_, root_;
};

// containerd 1.6 reports <containerd root>/io.containerd.snapshotter.v1.clip: after the
// call it exists, and a stat of it lands on clip's root.
TEST_F(ImageFsLinkTest, CreatesTheLinkAndTheContainerdRoot) {
  const std::string croot = dir_ + "/var/lib/containerd";
  auto path = EnsureImageFsLink(croot, root_);
  ASSERT_THAT(path, IsOk());
  EXPECT_EQ(*path, croot + "/io.containerd.snapshotter.v1.clip");
  EXPECT_EQ(Target(*path), root_);
  struct stat via_link, direct;
  ASSERT_EQ(stat(path->c_str(), &via_link), 0);
  ASSERT_EQ(stat(root_.c_str(), &direct), 0);
  EXPECT_EQ(via_link.st_ino, direct.st_ino);
  struct stat cr;
  ASSERT_EQ(stat(croot.c_str(), &cr), 0);
  EXPECT_EQ(cr.st_mode & 07777, 0711u);
  // Idempotent.
  ASSERT_THAT(EnsureImageFsLink(croot, root_), IsOk());
  EXPECT_EQ(Target(*path), root_);
}

TEST_F(ImageFsLinkTest, ReplacesAStaleLinkKeepsADirectory) {
  const std::string croot = dir_ + "/c";
  mkdir(croot.c_str(), 0711);
  const std::string path = croot + "/io.containerd.snapshotter.v1.clip";
  ASSERT_EQ(symlink("/old/root", path.c_str()), 0);
  ASSERT_THAT(EnsureImageFsLink(croot, root_), IsOk());
  EXPECT_EQ(Target(path), root_);
  unlink(path.c_str());
  mkdir(path.c_str(), 0700);
  std::ofstream(path + "/keep") << "x";
  ASSERT_THAT(EnsureImageFsLink(croot, root_), IsOk());
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(access((path + "/keep").c_str(), F_OK), 0);
}

TEST_F(ImageFsLinkTest, RelativePathsAreRefused) {
  EXPECT_EQ(EnsureImageFsLink("var/lib/containerd", root_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EnsureImageFsLink(dir_, "relative").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace clip
