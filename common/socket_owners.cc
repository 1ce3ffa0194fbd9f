#include "common/socket_owners.h"

#include <dirent.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

// glibc 2.36's <sys/pidfd.h> declares its functions without C linkage.
extern "C" {
#include <sys/pidfd.h>
}

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"

namespace clip {
namespace {

// The sockfs inode of the listening unix socket bound to the file (dev, ino), asked of
// the kernel with sock_diag (UDIAG_SHOW_VFS: the bound file's inode and device, in the
// kernel's own encoding: major << 20 | minor). 0 when none is.
absl::StatusOr<uint64_t> ListenerBoundTo(dev_t dev, ino_t ino) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return ErrnoToStatus(errno, "sock_diag socket");
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } query{};
  query.header.nlmsg_len = sizeof(query);
  query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  query.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  query.request.sdiag_family = AF_UNIX;
  query.request.udiag_states = 1U << TCP_LISTEN;
  query.request.udiag_show = UDIAG_SHOW_VFS;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl, &query, sizeof(query), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) !=
      static_cast<ssize_t>(sizeof(query))) {
    absl::Status st = ErrnoToStatus(errno, "sock_diag request");
    close(nl);
    return st;
  }
  const uint32_t want_dev = (major(dev) << 20) | minor(dev);
  const uint32_t want_ino = static_cast<uint32_t>(ino);
  alignas(nlmsghdr) char buf[32 << 10];
  uint64_t found = 0;
  for (;;) {
    ssize_t n = recv(nl, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status st = ErrnoToStatus(n < 0 ? errno : EPROTO, "sock_diag answer");
      close(nl);
      return st;
    }
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        close(nl);
        return found;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        close(nl);
        return absl::InternalError("sock_diag answered an error");
      }
      const auto* d = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
      int attrs = static_cast<int>(h->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(*d)));
      for (auto* a = reinterpret_cast<rtattr*>(const_cast<unix_diag_msg*>(d) + 1); RTA_OK(a, attrs);
           a = RTA_NEXT(a, attrs)) {
        if (a->rta_type != UNIX_DIAG_VFS || RTA_PAYLOAD(a) < sizeof(unix_diag_vfs)) continue;
        unix_diag_vfs vfs;
        std::memcpy(&vfs, RTA_DATA(a), sizeof(vfs));
        if (vfs.udiag_vfs_ino == want_ino && vfs.udiag_vfs_dev == want_dev) found = d->udiag_ino;
      }
    }
  }
}

// Calls `each(fd, link target)` for every fd of process `pid` (none when it is gone).
void ForEachFd(pid_t pid, const std::function<void(int, const std::string&)>& each) {
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    int fd;
    if (!absl::SimpleAtoi(e->d_name, &fd)) continue;
    char target[256];
    ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
    if (n <= 0) continue;
    each(fd, std::string(target, static_cast<size_t>(n)));
  }
  closedir(d);
}

std::string Comm(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/comm"));
  std::string comm;
  std::getline(in, comm);
  return comm;
}

}  // namespace

absl::StatusOr<ListeningSocket> FindListeningSocket(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, path);
  if (!S_ISSOCK(st.st_mode)) return absl::NotFoundError(absl::StrCat(path, " is not a socket"));
  absl::StatusOr<uint64_t> inode = ListenerBoundTo(st.st_dev, st.st_ino);
  if (!inode.ok()) return inode.status();
  if (*inode == 0) {
    return absl::NotFoundError(absl::StrCat("no listening socket is bound to ", path));
  }
  ListeningSocket out;
  out.inode = *inode;
  const std::string link = absl::StrCat("socket:[", *inode, "]");
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return ErrnoToStatus(errno, "/proc");
  while (dirent* e = readdir(proc)) {
    pid_t pid;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    ForEachFd(pid, [&](int fd, const std::string& target) {
      if (target == link) out.holders.push_back(SocketHolder{pid, fd, Comm(pid)});
    });
  }
  closedir(proc);
  return out;
}

absl::StatusOr<int> TakeFd(pid_t pid, int fd) {
  int pidfd = pidfd_open(pid, 0);
  if (pidfd < 0 && errno == ESRCH) return absl::NotFoundError(absl::StrCat("no process ", pid));
  if (pidfd < 0) return ErrnoToStatus(errno, absl::StrCat("pidfd_open ", pid));
  int taken = pidfd_getfd(pidfd, fd, 0);  // close-on-exec
  const int error = errno;
  close(pidfd);
  if (taken < 0) return ErrnoToStatus(error, absl::StrCat("pidfd_getfd ", pid, " fd ", fd));
  return taken;
}

bool HoldsFuseConnection(pid_t pid) {
  bool fuse = false;
  ForEachFd(pid, [&](int, const std::string& target) { fuse = fuse || target == "/dev/fuse"; });
  return fuse;
}

std::vector<std::string> ProcessArgs(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.empty()) return {};
  if (all.back() == '\0') all.pop_back();
  return absl::StrSplit(all, '\0');
}

}  // namespace clip
