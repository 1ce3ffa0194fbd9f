// SendWithFd: one message on a unix socket, with at most one file descriptor attached
// (SCM_RIGHTS). The one place clip passes fds: to clip-fd-holder and to systemd.
//
//   CLIP_RETURN_IF_ERROR(SendWithFd(sock, nullptr, 0, bytes, fuse_fd));
//
// Thread safety: a plain function.
#ifndef CLIP_FS_FD_PASSING_H_
#define CLIP_FS_FD_PASSING_H_

#include <sys/socket.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace clip {

// Sends `bytes` as one message (to `to` when given, for datagram sockets) with `fd`
// attached unless it is -1; retried on EINTR, never SIGPIPE. kUnavailable when the whole
// message was not sent.
absl::Status SendWithFd(int sock, const sockaddr* to, socklen_t to_len, absl::string_view bytes,
                        int fd);

}  // namespace clip

#endif  // CLIP_FS_FD_PASSING_H_
