#include "common/mountinfo.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::testing::ElementsAre;

constexpr char kMountinfo[] =
    "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
    "90 22 0:52 / /var/lib/clip/snapshots/3/fs ro,nosuid shared:40 - fuse.clip clip "
    "ro,user_id=0,group_id=0,default_permissions,allow_other\n"
    "91 22 0:53 / /run/c/rootfs rw shared:41 - overlay overlay "
    "rw,lowerdir=/var/lib/clip/snapshots/3/fs:/var/lib/clip/snapshots/2/tree,upperdir=/u,"
    "workdir=/w\n"
    "92 22 0:54 / /run/c\\040two/rootfs rw shared:42 - overlay overlay "
    "rw,lowerdir+=/a\\040b,lowerdir+=/c,upperdir=/u,workdir=/w\n"
    "93 90 259:1 /var/lib/clip/snapshots/3/tree /var/lib/clip/snapshots/3/fs rw - ext4 "
    "/dev/root rw\n"
    // A FUSE mount (95) with a tree moved beneath it (96, newer, below): 95 is seen.
    "95 96 0:55 / /var/lib/clip/snapshots/4/fs ro - fuse.clip clip ro\n"
    "96 22 259:1 /var/lib/clip/snapshots/4/tree /var/lib/clip/snapshots/4/fs rw - ext4 "
    "/dev/root rw\n"
    "x 22 259:1 / /bad-id rw - ext4 /dev/root rw\n"
    "garbage line\n";

TEST(MountinfoTest, ParsesDevicesMountpointsTypesAndLowerdirsInBothForms) {
  std::vector<MountEntry> m = ParseMountinfo(kMountinfo);
  ASSERT_EQ(m.size(), 7u);
  EXPECT_EQ(m[1].id, 90);
  EXPECT_EQ(m[1].parent, 22);
  EXPECT_EQ(m[1].device, "0:52");
  EXPECT_EQ(m[1].fstype, "fuse.clip");
  EXPECT_THAT(m[2].lowerdirs,
              ElementsAre("/var/lib/clip/snapshots/3/fs", "/var/lib/clip/snapshots/2/tree"));
  EXPECT_EQ(m[3].mountpoint, "/run/c two/rootfs");
  EXPECT_THAT(m[3].lowerdirs, ElementsAre("/a b", "/c"));
  EXPECT_TRUE(m[1].lowerdirs.empty());
}

TEST(MountinfoTest, TheTopMountAtAPathIsTheOneNothingIsStackedOn) {
  std::vector<MountEntry> m = ParseMountinfo(kMountinfo);
  const MountEntry* top = TopMountAt(m, "/var/lib/clip/snapshots/3/fs");
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top->fstype, "ext4");  // the tree bound over the detached FUSE mount
  top = TopMountAt(m, "/var/lib/clip/snapshots/4/fs");
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top->fstype, "fuse.clip");  // the tree beneath it is newer, and below
  EXPECT_EQ(TopMountAt(m, "/nowhere"), nullptr);
  EXPECT_EQ(TopMountAt(m, "/bad-id"), nullptr);  // a malformed line is skipped
}

TEST(MountinfoTest, EscapesAsTheKernelDoes) {
  EXPECT_EQ(EscapeMountPath("/a b\\c"), "/a\\040b\\134c");
  EXPECT_EQ(
      ParseMountinfo("1 0 0:1 / " + EscapeMountPath("/x y\tz") + " rw - tmpfs t rw")[0].mountpoint,
      "/x y\tz");
}

TEST(MountinfoTest, ThisProcessHasARoot) {
  std::vector<MountEntry> m = ParseMountinfo(ReadMountinfo());
  EXPECT_NE(TopMountAt(m, "/"), nullptr);
}

}  // namespace
}  // namespace clip
