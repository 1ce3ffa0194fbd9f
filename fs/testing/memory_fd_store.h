// MemoryFdStore: an FdStore (fs/fd_holder.h) in this process's memory, for tests that
// take a FUSE connection over from a server they "killed" (FuseServer::Detach) without
// a holder process. Put keeps a dup of the fd, List hands out dups: the caller owns
// what List returns, the store what it keeps (closed on Drop and destruction).
//
// Thread safety: one mutex; safe for concurrent use (a FuseServer's workers drop
// entries while a test lists them).
#ifndef CLIP_FS_TESTING_MEMORY_FD_STORE_H_
#define CLIP_FS_TESTING_MEMORY_FD_STORE_H_

#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fs/fd_holder.h"

namespace clip::testing {

class MemoryFdStore final : public FdStore {
 public:
  ~MemoryFdStore() override {
    for (auto& [name, h] : held_) close(h.fd);
  }
  absl::Status Put(const std::string& name, const std::string& data, int fd) override {
    absl::MutexLock lock(&mu_);
    DropLocked(name);
    held_[name] = HeldFd{name, data, dup(fd)};
    return absl::OkStatus();
  }
  absl::Status Drop(const std::string& name) override {
    absl::MutexLock lock(&mu_);
    DropLocked(name);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<HeldFd>> List() override {
    absl::MutexLock lock(&mu_);
    std::vector<HeldFd> out;
    for (const auto& [name, h] : held_) out.push_back(HeldFd{name, h.data, dup(h.fd)});
    return out;
  }
  absl::Status Quit() override { return absl::OkStatus(); }

  // How many entries are held now.
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }

 private:
  void DropLocked(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (auto it = held_.find(name); it != held_.end()) {
      close(it->second.fd);
      held_.erase(it);
    }
  }

  mutable absl::Mutex mu_;
  std::map<std::string, HeldFd> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip::testing

#endif  // CLIP_FS_TESTING_MEMORY_FD_STORE_H_
