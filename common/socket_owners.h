// Socket owners: which processes hold the listening unix socket that a socket file
// leads to, and taking one of their fds over.
//
// A listening socket lives as long as any process holds it, whatever happened to its
// file. The daemon hands its listener to clip-fd-holder; when the holder becomes
// unreachable (its own socket file was under a root that was wiped), the listener at
// the daemon's address is still held, connections still queue in its backlog, and
// nobody will ever accept them. FindListeningSocket tells that case from a live
// daemon: the kernel's sock_diag names the socket bound to the file (its vfs inode and
// device), /proc/<pid>/fd names its holders. TakeFd duplicates one of them into this
// process (pidfd_getfd, Linux >= 5.6; needs ptrace rights over the holder, i.e. root
// or the same user), so the backlog is served, not dropped.
//
//   CLIP_ASSIGN_OR_RETURN(ListeningSocket s, FindListeningSocket("/run/clip/clip.sock"));
//   for (const SocketHolder& h : s.holders) if (h.comm == "clip-fd-holder") ...
//   CLIP_ASSIGN_OR_RETURN(int fd, TakeFd(h.pid, h.fd));
//
// Thread safety: plain functions; what they report can change the moment after.
#ifndef CLIP_COMMON_SOCKET_OWNERS_H_
#define CLIP_COMMON_SOCKET_OWNERS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace clip {

// One process's fd for a socket.
struct SocketHolder {
  pid_t pid = 0;
  int fd = -1;
  std::string comm;  // /proc/<pid>/comm, e.g. "clip-fd-holder"
};

struct ListeningSocket {
  uint64_t inode = 0;                 // the socket's own inode (sockfs), as in "socket:[inode]"
  std::vector<SocketHolder> holders;  // every process with an fd for it, this one too
};

// The listening unix stream socket bound to the socket file at `path`. kNotFound when
// `path` is no socket file or no listening socket is bound to it (a stale file).
absl::StatusOr<ListeningSocket> FindListeningSocket(const std::string& path);

// A duplicate, in this process, of fd `fd` of process `pid` (close-on-exec);
// kNotFound when that process is gone.
absl::StatusOr<int> TakeFd(pid_t pid, int fd);

// Whether process `pid` holds an fd for /dev/fuse (a FUSE connection).
bool HoldsFuseConnection(pid_t pid);

// The arguments process `pid` was started with (/proc/<pid>/cmdline); empty when gone.
std::vector<std::string> ProcessArgs(pid_t pid);

}  // namespace clip

#endif  // CLIP_COMMON_SOCKET_OWNERS_H_
