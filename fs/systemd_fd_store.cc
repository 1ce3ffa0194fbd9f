#include "fs/systemd_fd_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fs/fd_passing.h"
#include "fs/sealed_memfd.h"

namespace clip {
namespace {

constexpr size_t kMaxFdName = 255;
constexpr size_t kMaxData = 1 << 20;  // an entry's data (FUSE_INIT: a few hundred bytes)

bool ValidName(const std::string& fdname) {
  if (fdname.empty() || fdname.size() > kMaxFdName) return false;
  for (char c : fdname) {
    if (c < 0x20 || c > 0x7e || c == ':') return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<SystemdFdStore> SystemdFdStore::FromEnvironment() {
  const char* notify = getenv("NOTIFY_SOCKET");
  if (notify == nullptr || *notify == '\0') return nullptr;
  std::vector<std::pair<std::string, int>> passed;
  const char* pid = getenv("LISTEN_PID");
  const char* count = getenv("LISTEN_FDS");
  int64_t p = 0, n = 0;
  if (pid != nullptr && count != nullptr && absl::SimpleAtoi(pid, &p) && p == getpid() &&
      absl::SimpleAtoi(count, &n) && n > 0 && n < 65536) {
    const char* names = getenv("LISTEN_FDNAMES");
    std::vector<std::string> split =
        names == nullptr ? std::vector<std::string>{} : absl::StrSplit(names, ':');
    for (int64_t i = 0; i < n; ++i) {
      int fd = static_cast<int>(3 + i);
      fcntl(fd, F_SETFD, FD_CLOEXEC);
      passed.emplace_back(i < static_cast<int64_t>(split.size()) ? split[i] : "", fd);
    }
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return std::make_unique<SystemdFdStore>(notify, std::move(passed));
}

SystemdFdStore::SystemdFdStore(std::string notify_socket,
                               std::vector<std::pair<std::string, int>> passed)
    : notify_socket_(std::move(notify_socket)), passed_(std::move(passed)) {}

SystemdFdStore::~SystemdFdStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, fd] : passed_) close(fd);
}

absl::Status SystemdFdStore::Notify(const std::string& message, int fd) {
  sockaddr_un addr{};
  if (notify_socket_.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("NOTIFY_SOCKET path too long");
  }
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, notify_socket_.data(), notify_socket_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  absl::Status sent = SendWithFd(
      sock, reinterpret_cast<const sockaddr*>(&addr),
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + notify_socket_.size()), message, fd);
  close(sock);
  if (!sent.ok()) {
    return absl::UnavailableError(
        absl::StrCat("sd_notify to ", notify_socket_, ": ", sent.message()));
  }
  return absl::OkStatus();
}

absl::Status SystemdFdStore::Put(const std::string& name, const std::string& data, int fd) {
  const std::string fname = "f" + name, dname = "d" + name;
  if (!ValidName(fname)) {
    return absl::InvalidArgumentError(absl::StrCat("not a valid systemd FDNAME: ", name));
  }
  absl::StatusOr<int> sealed = SealedMemfd("clip-fd-data", data);
  if (!sealed.ok()) return sealed.status();
  const int memfd = *sealed;
  absl::MutexLock lock(&mu_);
  // Replace: systemd keeps every fd sent under a name, so remove the old ones first.
  absl::Status st = Notify(absl::StrCat("FDSTOREREMOVE=1\nFDNAME=", fname), -1);
  st.Update(Notify(absl::StrCat("FDSTOREREMOVE=1\nFDNAME=", dname), -1));
  st.Update(Notify(absl::StrCat("FDSTORE=1\nFDNAME=", dname), memfd));
  st.Update(Notify(absl::StrCat("FDSTORE=1\nFDNAME=", fname), fd));
  close(memfd);
  if (st.ok()) names_.insert(name);
  return st;
}

absl::Status SystemdFdStore::Drop(const std::string& name) {
  absl::MutexLock lock(&mu_);
  names_.erase(name);
  absl::Status st = Notify(absl::StrCat("FDSTOREREMOVE=1\nFDNAME=f", name), -1);
  st.Update(Notify(absl::StrCat("FDSTOREREMOVE=1\nFDNAME=d", name), -1));
  return st;
}

absl::StatusOr<std::vector<HeldFd>> SystemdFdStore::List() {
  absl::MutexLock lock(&mu_);
  std::map<std::string, int> fds, data;
  for (auto& [name, fd] : passed_) {
    if (name.size() > 1 && name[0] == 'f') {
      fds[name.substr(1)] = fd;
    } else if (name.size() > 1 && name[0] == 'd') {
      data[name.substr(1)] = fd;
    } else {
      close(fd);  // not ours
    }
  }
  passed_.clear();
  std::vector<HeldFd> out;
  for (auto& [name, fd] : fds) {
    HeldFd h{name, "", fd};
    if (auto d = data.find(name); d != data.end()) {
      // Ours are sealed: an entry whose data someone could change gets none (as if it
      // had no data: its user finds it unusable and starts afresh).
      absl::StatusOr<std::string> bytes = ReadSealedMemfd(d->second, kMaxData);
      if (bytes.ok()) h.data = *std::move(bytes);
    }
    names_.insert(name);
    out.push_back(std::move(h));
  }
  for (auto& [name, fd] : data) close(fd);
  return out;
}

absl::Status SystemdFdStore::Quit() {
  std::set<std::string> names;
  {
    absl::MutexLock lock(&mu_);
    names.swap(names_);
  }
  absl::Status st;
  for (const std::string& name : names) st.Update(Drop(name));
  return st;
}

}  // namespace clip
