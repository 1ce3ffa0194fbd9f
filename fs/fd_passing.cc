#include "fs/fd_passing.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "absl/strings/str_cat.h"

namespace clip {

absl::Status SendWithFd(int sock, const sockaddr* to, socklen_t to_len, absl::string_view bytes,
                        int fd) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);
  msg.msg_namelen = to == nullptr ? 0 : to_len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(bytes.size())) {
    return absl::UnavailableError(absl::StrCat("sendmsg: ", n < 0 ? strerror(errno) : "short"));
  }
  return absl::OkStatus();
}

}  // namespace clip
