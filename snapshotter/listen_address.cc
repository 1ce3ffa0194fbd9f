#include "snapshotter/listen_address.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

// glibc 2.36's <sys/pidfd.h> declares its functions without C linkage.
extern "C" {
#include <sys/pidfd.h>
}

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/socket_owners.h"

namespace clip {
namespace {

constexpr char kHolderComm[] = "clip-fd-holder";

absl::StatusOr<int> BindAnew(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  mode_t old = umask(0177);  // the socket: 0600
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (bound != 0 || listen(fd, 512) != 0) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("listen on ", path));
    close(fd);
    return st;
  }
  return fd;
}

// Whether something accepts connections at `path` (used only when sock_diag cannot
// tell who holds the socket).
bool Answers(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return live;
}

// A holder no daemon can reach: ended when the listener was all it held, else left
// running for the FUSE connections it keeps alive.
void EndOrphanedHolder(pid_t pid, const std::string& path) {
  const std::string args = absl::StrJoin(ProcessArgs(pid), " ");
  if (HoldsFuseConnection(pid)) {
    Log(LogLevel::kWarning, "daemon",
        absl::StrCat("clip-fd-holder pid ", pid, " (", args, ") held the listening socket at ",
                     path,
                     " but no daemon can reach it (its socket file is gone); it also holds "
                     "FUSE connections of running containers, which this daemon cannot take "
                     "over: left running (end it with `kill ",
                     pid, "` once those containers are gone)"));
    return;
  }
  int pidfd = pidfd_open(pid, 0);
  if (pidfd < 0 || pidfd_send_signal(pidfd, SIGTERM, nullptr, 0) != 0) {
    Log(LogLevel::kWarning, "daemon",
        absl::StrCat("cannot end the unreachable clip-fd-holder pid ", pid, ": ", strerror(errno)));
  } else {
    Log(LogLevel::kInfo, "daemon",
        absl::StrCat("ended clip-fd-holder pid ", pid, " (", args,
                     "): no daemon could reach it and it held nothing but the listening "
                     "socket"));
  }
  if (pidfd >= 0) close(pidfd);
}

}  // namespace

absl::StatusOr<ClaimedListener> ClaimListeningAddress(const std::string& path,
                                                      pid_t current_holder) {
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", dir));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoToStatus(errno, path);
  } else if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a socket"));
  } else {
    absl::StatusOr<ListeningSocket> socket = FindListeningSocket(path);
    if (!socket.ok() && socket.status().code() != absl::StatusCode::kNotFound) {
      // No sock_diag (a restricted kernel): the old rule, a file that answers is live.
      if (Answers(path)) {
        return absl::AlreadyExistsError(absl::StrCat("another daemon serves ", path));
      }
    } else if (socket.ok()) {
      std::vector<SocketHolder> orphans;
      for (const SocketHolder& h : socket->holders) {
        if (h.pid == getpid()) continue;
        if (h.comm != kHolderComm || h.pid == current_holder) {
          return absl::AlreadyExistsError(
              absl::StrCat("another process serves ", path, ": pid ", h.pid, " (", h.comm, ")"));
        }
        orphans.push_back(h);
      }
      ClaimedListener claimed;
      for (const SocketHolder& h : orphans) {
        if (claimed.fd >= 0) break;
        absl::StatusOr<int> fd = TakeFd(h.pid, h.fd);
        if (fd.ok()) {
          claimed = ClaimedListener{*fd, true};
          Log(LogLevel::kInfo, "daemon",
              absl::StrCat("took the listening socket at ", path, " back from clip-fd-holder pid ",
                           h.pid, ", which no daemon could reach (its socket file is gone)"));
        } else {
          Log(LogLevel::kWarning, "daemon",
              absl::StrCat("cannot take the listening socket at ", path,
                           " from clip-fd-holder pid ", h.pid, ": ", fd.status().message(),
                           "; binding anew"));
        }
      }
      for (const SocketHolder& h : orphans) EndOrphanedHolder(h.pid, path);
      if (claimed.fd >= 0) return claimed;
    }
    unlink(path.c_str());  // stale, or orphaned and not taken back
  }
  absl::StatusOr<int> fd = BindAnew(path);
  if (!fd.ok()) return fd.status();
  return ClaimedListener{*fd, false};
}

}  // namespace clip
