#include "common/errno_status.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace clip {
namespace {

absl::StatusCode CodeForErrno(int e) {
  switch (e) {
    case 0:
      return absl::StatusCode::kUnknown;  // A failure reported without errno.
    case ENOENT:
    case ENXIO:
    case ENODEV:
      return absl::StatusCode::kNotFound;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
      return absl::StatusCode::kInvalidArgument;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case EAGAIN:
    case EBUSY:
    case EINTR:
    case ECONNREFUSED:
    case ECONNRESET:
    case ENOTCONN:
    case ETIMEDOUT:
    case EPIPE:
      return absl::StatusCode::kUnavailable;
    case ENOTEMPTY:
      return absl::StatusCode::kFailedPrecondition;
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::StatusCode::kUnimplemented;
    case EFBIG:
    case EOVERFLOW:
      return absl::StatusCode::kOutOfRange;
    default:
      return absl::StatusCode::kInternal;  // EIO and the rest.
  }
}

}  // namespace

absl::Status ErrnoToStatus(int error_number, absl::string_view context) {
  return absl::Status(CodeForErrno(error_number),
                      absl::StrCat(context, ": ", std::strerror(error_number)));
}

}  // namespace clip
