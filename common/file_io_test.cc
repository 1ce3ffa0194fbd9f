#include "common/file_io.h"

#include <sys/stat.h>

#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(FileIoTest, WriteAtomicallyThenRead) {
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/f";
  std::string bytes(100000, 'x');
  bytes[5] = '\0';
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  ASSERT_TRUE(WriteFileAtomically(path, bytes + "more").ok());  // replaces
  auto back = ReadWholeFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, bytes + "more");
  EXPECT_EQ(ReadWholeFile(path + ".missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(WriteFileAtomically("/nonexistent-dir/f", "x").ok());
}

}  // namespace
}  // namespace clip
