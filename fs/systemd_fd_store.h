// SystemdFdStore: systemd's file-descriptor store as the place a daemon's fds outlive it.
//
// Under systemd (Type=notify, FileDescriptorStoreMax= in the unit) the service manager
// keeps fds a service sends it with `FDSTORE=1` and hands them back to the next start of
// the service as LISTEN_FDS/LISTEN_FDNAMES (fds 3, 4, ...), across crashes, restarts and
// upgrades; a stop of the unit empties the store. Each entry is two fds: the kept fd,
// named `f<name>`, and a sealed memfd with the entry's data, named `d<name>`. Names must
// be what systemd accepts as FDNAME (printable ASCII without ':', at most 254 bytes).
//
//   std::unique_ptr<SystemdFdStore> store = SystemdFdStore::FromEnvironment();  // null: no systemd
//   CLIP_ASSIGN_OR_RETURN(std::vector<HeldFd> held, store->List());  // what the last run kept
//   CLIP_RETURN_IF_ERROR(store->Put("/var/lib/.../fs", init, fuse_fd));
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_FS_SYSTEMD_FD_STORE_H_
#define CLIP_FS_SYSTEMD_FD_STORE_H_

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fs/fd_holder.h"

namespace clip {

class SystemdFdStore final : public FdStore {
 public:
  // From $NOTIFY_SOCKET and, when LISTEN_PID is this process, the fds systemd passed
  // (LISTEN_FDS, LISTEN_FDNAMES; the variables are removed). Null without NOTIFY_SOCKET.
  static std::unique_ptr<SystemdFdStore> FromEnvironment();
  // For tests: the notify socket path and the passed fds with their names.
  SystemdFdStore(std::string notify_socket, std::vector<std::pair<std::string, int>> passed);
  ~SystemdFdStore() override;

  absl::Status Put(const std::string& name, const std::string& data, int fd) override;
  absl::Status Drop(const std::string& name) override;
  absl::StatusOr<std::vector<HeldFd>> List() override;
  absl::Status Quit() override;

 private:
  absl::Status Notify(const std::string& message, int fd);

  const std::string notify_socket_;
  absl::Mutex mu_;
  std::vector<std::pair<std::string, int>> passed_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> names_ ABSL_GUARDED_BY(mu_);  // entries stored, for Quit
};

}  // namespace clip

#endif  // CLIP_FS_SYSTEMD_FD_STORE_H_
