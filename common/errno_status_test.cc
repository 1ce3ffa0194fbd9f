#include "common/errno_status.h"

#include <cerrno>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

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
  EXPECT_THAT(ErrnoToStatus(0, ""),
              StatusIs(absl::StatusCode::kUnknown));  // A failure without errno is still a failure.
}

TEST(ErrnoStatusTest, FuseEdgeErrnoFromCodeOrCarried) {
  EXPECT_EQ(StatusToErrno(absl::OkStatus()), 0);
  EXPECT_EQ(StatusToErrno(absl::NotFoundError("x")), ENOENT);
  EXPECT_EQ(StatusToErrno(absl::InvalidArgumentError("x")), EINVAL);
  EXPECT_EQ(StatusToErrno(absl::PermissionDeniedError("x")), EACCES);
  EXPECT_EQ(StatusToErrno(absl::OutOfRangeError("x")), ERANGE);
  EXPECT_EQ(StatusToErrno(absl::UnimplementedError("x")), ENOSYS);
  EXPECT_EQ(StatusToErrno(absl::ResourceExhaustedError("x")), ENOMEM);
  EXPECT_EQ(StatusToErrno(absl::DataLossError("x")), EIO);
  EXPECT_EQ(StatusToErrno(absl::UnavailableError("x")), EIO);
  EXPECT_EQ(StatusToErrno(absl::FailedPreconditionError("x")), EIO);
  // Carried: the code and message stay, the edge answers the errno.
  absl::Status notdir = WithErrno(absl::FailedPreconditionError("not a directory"), ENOTDIR);
  EXPECT_EQ(notdir.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(notdir.message(), "not a directory");
  EXPECT_EQ(StatusToErrno(notdir), ENOTDIR);
  EXPECT_EQ(StatusToErrno(WithErrno(absl::NotFoundError("attr"), ENODATA)), ENODATA);
  EXPECT_THAT(WithErrno(absl::OkStatus(), EIO), IsOk());
  // System call errors map by code at the edge (a reset connection is EIO to a reader).
  EXPECT_EQ(StatusToErrno(ErrnoToStatus(ECONNRESET, "fetch")), EIO);
}

}  // namespace
}  // namespace clip
