// Between errno and absl::Status, both ways, in one place. The core speaks
// absl::Status; system calls and the FUSE protocol speak errno.
//
// ErrnoToStatus turns a failed system call's errno into a Status. StatusToErrno is
// what a Status becomes at the FUSE edge: the errno the error carries (WithErrno: a
// filesystem error whose errno is not its code's, e.g. ENOTDIR, ENODATA), else one
// mapped from its code.
//
//   if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
//   return WithErrno(absl::FailedPreconditionError("not a directory"), ENOTDIR);
//   fuse_reply_err(req, StatusToErrno(status));
//
// Thread safety: pure functions.
#ifndef CLIP_COMMON_ERRNO_STATUS_H_
#define CLIP_COMMON_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace clip {

// Status whose code reflects `error_number` (ENOENT -> kNotFound, EEXIST ->
// kAlreadyExists, EACCES/EPERM -> kPermissionDenied, ...) and whose message is
// "<context>: <strerror>".
absl::Status ErrnoToStatus(int error_number, absl::string_view context);

// `status` carrying `error_number` for the FUSE edge (code and message unchanged).
absl::Status WithErrno(absl::Status status, int error_number);

// The errno `status` carries, else: OK 0, NotFound ENOENT, InvalidArgument EINVAL,
// PermissionDenied EACCES, OutOfRange ERANGE, Unimplemented ENOSYS, ResourceExhausted
// ENOMEM, anything else EIO (the bytes could not be served).
int StatusToErrno(const absl::Status& status);

}  // namespace clip

#endif  // CLIP_COMMON_ERRNO_STATUS_H_
