// ErrnoToStatus: turns a failed system call's errno into an absl::Status.
//
// The core speaks absl::Status; system calls speak errno. This is the one place the
// mapping lives (the FUSE edge maps back with StatusToErrno in fs/).
//
//   if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
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

}  // namespace clip

#endif  // CLIP_COMMON_ERRNO_STATUS_H_
