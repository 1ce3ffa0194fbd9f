#include "common/errno_status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(ErrnoStatusTest, MapsCodesAndKeepsContext) {
  absl::Status s = ErrnoToStatus(ENOENT, "open /x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "open /x: No such file or directory");
  EXPECT_EQ(ErrnoToStatus(EEXIST, "").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoToStatus(EACCES, "").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoToStatus(ENOSPC, "").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoToStatus(ECONNRESET, "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatus(ENOTEMPTY, "").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrnoToStatus(EIO, "").code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(ErrnoToStatus(0, "").ok());  // A failure without errno is still a failure.
}

}  // namespace
}  // namespace clip
