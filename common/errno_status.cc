#include "common/errno_status.h"

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
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

constexpr char kErrnoPayload[] = "type.clip.dev/errno";

absl::Status WithErrno(absl::Status status, int error_number) {
  if (!status.ok()) status.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(error_number)));
  return status;
}

int StatusToErrno(const absl::Status& s) {
  if (auto carried = s.GetPayload(kErrnoPayload)) {
    int e = 0;
    if (absl::SimpleAtoi(std::string(*carried), &e) && e > 0) return e;
  }
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kNotFound:
      return ENOENT;
    case absl::StatusCode::kInvalidArgument:
      return EINVAL;
    case absl::StatusCode::kPermissionDenied:
      return EACCES;
    case absl::StatusCode::kOutOfRange:
      return ERANGE;
    case absl::StatusCode::kUnimplemented:
      return ENOSYS;
    case absl::StatusCode::kResourceExhausted:
      return ENOMEM;
    default:
      return EIO;  // Unavailable, DataLoss, Internal: the bytes could not be served.
  }
}

}  // namespace clip
