// Sealed memfds: bytes round trip (NUL and all), nobody can change them after, and an
// fd that could still change (an unsealed memfd, a file) or is too large is refused.
#include "fs/sealed_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

TEST(SealedMemfdTest, RoundTripAndSealed) {
  const std::string bytes = std::string("a\0b", 3) + std::string(100000, 'x');
  absl::StatusOr<int> fd = SealedMemfd("clip-test", bytes);
  ASSERT_THAT(fd, IsOk());
  EXPECT_EQ(*ReadSealedMemfd(*fd, 1 << 20), bytes);
  EXPECT_EQ(pwrite(*fd, "z", 1, 0), -1);  // sealed
  EXPECT_EQ(ftruncate(*fd, 1), -1);
  EXPECT_THAT(ReadSealedMemfd(*fd, 1000), StatusIs(absl::StatusCode::kResourceExhausted));
  close(*fd);

  absl::StatusOr<int> empty = SealedMemfd("clip-test", "");
  ASSERT_THAT(empty, IsOk());
  EXPECT_EQ(*ReadSealedMemfd(*empty, 10), "");
  close(*empty);
}

TEST(SealedMemfdTest, WhatCouldStillChangeIsRefused) {
  int open_memfd = memfd_create("clip-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(open_memfd, 0);
  EXPECT_THAT(ReadSealedMemfd(open_memfd, 10), StatusIs(absl::StatusCode::kFailedPrecondition));
  close(open_memfd);
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/file";
  int file = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  EXPECT_THAT(ReadSealedMemfd(file, 10), StatusIs(absl::StatusCode::kFailedPrecondition));
  close(file);
}

}  // namespace
}  // namespace clip
