// FdHolder: keeps file descriptors alive across restarts of the daemon that owns them.
//
// The kernel keeps a FUSE connection while any process holds its /dev/fuse fd, and a
// listening socket while any process holds it. The daemon hands each such fd, the moment
// it has one, to a small holder process (`clip-fd-holder`) over a root-only unix socket
// (SCM_RIGHTS); a daemon that starts later takes them back and serves them again. So a
// crash, an OOM kill or an upgrade of the daemon never closes a mount under a running
// container. Each held fd has a name (the mountpoint, or "grpc-listener") and a small
// blob of data (what the next daemon needs to resume it, e.g. the kernel's FUSE_INIT).
//
// Wire protocol (SOCK_SEQPACKET, one message per request or answer, version 1):
//
// | offset | size | field |
// |---|---|---|
// | 0 | 4 | magic `CFH1` |
// | 4 | 1 | op: `P` put (with one fd), `D` drop, `L` list, `Q` quit; answers `K` ok, `E` error
// (name = message), `I` one held entry (with its fd), `Z` end of list | | 5 | 4 | name length N
// (little endian, at most 4096) | | 9 | N | name | | 9+N | 4 | data length M (at most 64 KiB) | |
// 13+N | M | data |
//
// put replaces an entry of the same name (closing the old fd); drop closes it; list
// answers every entry (`I` with a duplicate of its fd) then `Z`, and keeps holding them;
// quit closes everything and ends the holder (a full stop of the node's clip).
//
//   CLIP_ASSIGN_OR_RETURN(std::unique_ptr<FdHolderClient> h, FdHolderClient::Connect(path));
//   CLIP_RETURN_IF_ERROR(h->Put("/var/lib/.../fs", init_bytes, fuse_fd));
//   CLIP_ASSIGN_OR_RETURN(std::vector<HeldFd> held, h->List());  // next daemon
//
// Thread safety: FdHolderClient is safe for concurrent use (one request at a time on
// its connection). RunFdHolder serves one connection at a time, single-threaded.
#ifndef CLIP_FS_FD_HOLDER_H_
#define CLIP_FS_FD_HOLDER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace clip {

// An entry returned by List: the caller owns `fd` (a duplicate of the held one).
struct HeldFd {
  std::string name;
  std::string data;
  int fd = -1;
};

// Where a daemon keeps the fds that must outlive it: clip's own holder process
// (FdHolderClient) or systemd's file-descriptor store (SystemdFdStore). Named entries,
// each an fd and a small blob of data; Put replaces an entry of the same name.
class FdStore {
 public:
  virtual ~FdStore() = default;
  virtual absl::Status Put(const std::string& name, const std::string& data, int fd) = 0;
  virtual absl::Status Drop(const std::string& name) = 0;
  // What a previous daemon left; the caller owns the returned fds.
  virtual absl::StatusOr<std::vector<HeldFd>> List() = 0;
  // A full stop: nothing is kept any more.
  virtual absl::Status Quit() = 0;
};

class FdHolderClient final : public FdStore {
 public:
  static constexpr absl::Duration kAnswerTimeout = absl::Seconds(10);

  // Connects to a running holder; kUnavailable when none listens at `path`. A holder
  // that does not answer a request within `kAnswerTimeout` is kUnavailable too (never a
  // hang), one that answers what is not the protocol kDataLoss.
  static absl::StatusOr<std::unique_ptr<FdHolderClient>> Connect(
      const std::string& path, absl::Duration answer_timeout = kAnswerTimeout);
  // Connects, or starts `holder_binary --socket path` detached (its own session, so it
  // outlives this process) and connects once it listens.
  static absl::StatusOr<std::unique_ptr<FdHolderClient>> ConnectOrStart(
      const std::string& path, const std::string& holder_binary,
      absl::Duration timeout = absl::Seconds(5));
  ~FdHolderClient() override;

  absl::Status Put(const std::string& name, const std::string& data, int fd) override;
  absl::Status Drop(const std::string& name) override;
  absl::StatusOr<std::vector<HeldFd>> List() override;
  absl::Status Quit() override;

  // The holder's process (SO_PEERCRED of the connection).
  pid_t pid() const { return pid_; }

 private:
  FdHolderClient(int sock, pid_t pid) : sock_(sock), pid_(pid) {}
  absl::Status Request(char op, const std::string& name, const std::string& data, int fd,
                       std::vector<HeldFd>* listed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  const int sock_;
  const pid_t pid_;
};

// The holder's loop: listens on `path` (replacing a stale socket, mode 0600) and serves
// until quit or a signal ends the process. Writes its PID to `<path>.pid` before it
// accepts a connection.
absl::Status RunFdHolder(const std::string& path);

}  // namespace clip

#endif  // CLIP_FS_FD_HOLDER_H_
