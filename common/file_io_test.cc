#include "common/file_io.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

TEST(FileIoTest, WriteAtomicallyThenRead) {
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/f";
  std::string bytes(100000, 'x');
  bytes[5] = '\0';
  ASSERT_THAT(WriteFileAtomically(path, bytes), IsOk());
  ASSERT_THAT(WriteFileAtomically(path, bytes + "more"), IsOk());  // replaces
  auto back = ReadWholeFile(path);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(*back, bytes + "more");
  EXPECT_EQ(ReadWholeFile(path + ".missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(WriteFileAtomically("/nonexistent-dir/f", "x"),
              StatusIs(absl::StatusCode::kNotFound));
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  return out;
}

// Written in a temporary directory of its own, invisible at its path until Commit; an
// uncommitted file leaves nothing behind; a failed rename neither.
TEST(AtomicFileTest, CommitRenamesAndAbandonRemoves) {
  std::string root = std::string(getenv("TEST_TMPDIR")) + "/atomic";
  ASSERT_EQ(system(("rm -rf " + root + " && mkdir -p " + root + "/tmp " + root + "/out").c_str()),
            0);
  const std::string path = root + "/out/doc";
  {
    auto file = AtomicFile::Create(path, {.tmp_dir = root + "/tmp", .sync = false, .mode = 0600});
    ASSERT_THAT(file, IsOk());
    std::string a = "hello ", b = "world";
    struct iovec iov[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
    ASSERT_THAT((*file)->Write(iov, 2), IsOk());
    EXPECT_EQ(Names(root + "/tmp").size(), 1u);
    EXPECT_TRUE(Names(root + "/out").empty());  // not visible before Commit
    ASSERT_THAT((*file)->Truncate(9), IsOk());
    ASSERT_THAT((*file)->Commit(), IsOk());
  }
  EXPECT_EQ(*ReadWholeFile(path), "hello wor");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(Names(root + "/tmp").empty());
  {
    auto file = AtomicFile::Create(path, {.tmp_dir = root + "/tmp"});
    ASSERT_THAT(file, IsOk());
    std::string c = "abandoned";
    struct iovec one = {c.data(), c.size()};
    ASSERT_THAT((*file)->Write(&one, 1), IsOk());
  }  // destroyed without Commit
  EXPECT_TRUE(Names(root + "/tmp").empty());
  EXPECT_EQ(*ReadWholeFile(path), "hello wor");
  {
    auto file = AtomicFile::Create(root + "/missing/doc", {.tmp_dir = root + "/tmp"});
    ASSERT_THAT(file, IsOk());
    EXPECT_THAT((*file)->Commit(), StatusIs(absl::StatusCode::kNotFound));
  }
  EXPECT_TRUE(Names(root + "/tmp").empty());
  EXPECT_THAT(AtomicFile::Create(path, {.tmp_dir = root + "/no-such-dir"}),
              StatusIs(absl::StatusCode::kNotFound));
}

// Direct I/O where the filesystem allows it, buffered where it refuses (tmpfs): the
// bytes are the same either way.
TEST(AtomicFileTest, DirectWhereAllowed) {
  for (std::string dir : {std::string(getenv("TEST_TMPDIR")), std::string("/dev/shm")}) {
    const std::string path = dir + "/direct-doc";
    AtomicFile::Options direct;
    direct.direct = true;
    auto file = AtomicFile::Create(path, direct);
    ASSERT_THAT(file, IsOk());
    void* block = nullptr;
    ASSERT_EQ(posix_memalign(&block, 4096, 4096), 0);
    memset(block, 'd', 4096);
    struct iovec whole = {block, 4096};
    ASSERT_THAT((*file)->Write(&whole, 1), IsOk()) << dir << " direct " << (*file)->direct();
    ASSERT_THAT((*file)->Truncate(100), IsOk());
    ASSERT_THAT((*file)->Commit(), IsOk());
    free(block);
    EXPECT_EQ(*ReadWholeFile(path), std::string(100, 'd')) << dir;
    unlink(path.c_str());
  }
}

}  // namespace
}  // namespace clip
