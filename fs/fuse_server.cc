#define FUSE_USE_VERSION 314

#include "fs/fuse_server.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/mountinfo.h"
#include "common/status_macros.h"
#include "fs/fuse_handover.h"
#include "fs/fuse_mount.h"
#include "fs/fuse_ops.h"
#include "fs/mount_stack.h"
#include "fs/passthrough.h"

namespace clip {

FuseServer::FuseServer(int threads, FdStore* holder) : holder_(holder) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) abort();
  for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { Worker(); });
}

FuseServer::~FuseServer() {
  std::vector<MountId> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, m] : mounts_) ids.push_back(id);
  }
  for (MountId id : ids) (void)Unmount(id);  // no-ops after Detach
  stop_ = true;
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  absl::MutexLock lock(&mu_);
  for (auto& [id, m] : mounts_) {
    if (m->se != nullptr && detached_) fuse_session_destroy(m->se);  // closes our copy only
  }
  for (auto& [name, held] : offered_) close(held.fd);
  for (auto& [name, held] : offered_tables_) close(held.fd);
  close(epoll_fd_);
}

namespace {

// The device ("major:minor") of the top mount at `mountpoint`, from
// /proc/self/mountinfo (no stat: that would ask this very mount, not served yet).
std::string MountDevice(const std::string& mountpoint) {
  const std::vector<MountEntry> mounts = ParseMountinfo(ReadMountinfo());
  const MountEntry* top = TopMountAt(mounts, mountpoint);
  return top == nullptr ? std::string() : top->device;
}

}  // namespace

// The kernel gives a FUSE mount the default readahead window of 128 KiB (its bdi's
// read_ahead_kb; the INIT reply can only lower it), so a sequential reader waits on one
// 128 KiB READ after another. Layers are read in ~2 MiB spans: a window of two spans
// lets the kernel keep several 1 MiB READs in flight (max_pages 256), which the
// workers serve in parallel. Best effort: without a writable /sys, reads stay correct.
void FuseServer::SetReadahead(const std::string& mountpoint) {
  const std::string device = MountDevice(mountpoint);
  const std::string path = absl::StrCat("/sys/class/bdi/", device, "/read_ahead_kb");
  const std::string kb = absl::StrCat(kReadaheadKb);
  int fd = device.empty() ? -1 : open(path.c_str(), O_WRONLY | O_CLOEXEC);
  const bool ok = fd >= 0 && write(fd, kb.data(), kb.size()) == static_cast<ssize_t>(kb.size());
  if (fd >= 0) close(fd);
  if (!ok) {
    readahead_log_.Log(LogLevel::kWarning, "fs",
                       absl::StrCat(mountpoint, ": cannot set the readahead window (",
                                    device.empty() ? "mount not found" : path,
                                    "): sequential reads stay at 128 KiB requests"));
  }
}

absl::Status FuseServer::MountFresh(Mounted* m, bool passthrough) {
  const char* argv[] = {"clip", "-o",
                        "ro,allow_other,default_permissions,fsname=clip,subtype=clip,noatime"};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  m->se = fuse_session_new(&args, &FuseOps(), sizeof(fuse_lowlevel_ops), m);
  fuse_opt_free_args(&args);  // libfuse may have copied and extended them
  if (m->se == nullptr) return absl::InternalError("fuse_session_new failed");
  // A mount left by a daemon that died without a holder answers ENOTCONN: detach it.
  umount2(m->mountpoint.c_str(), MNT_DETACH);
  // The mount syscall is ours, not fuse_session_mount's, so a first server and one that
  // took the connection over hold exactly the same session (libfuse keeps no mountpoint
  // of its own: a handover that does not unmount leaves nothing behind).
  m->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (m->fd < 0) {
    fuse_session_destroy(m->se);
    m->se = nullptr;
    return ErrnoToStatus(errno, "open /dev/fuse");
  }
  const std::string options =
      absl::StrCat("fd=", m->fd, ",rootmode=40000,user_id=", getuid(), ",group_id=", getgid(),
                   ",allow_other,default_permissions");
  if (mount("clip", m->mountpoint.c_str(), kClipFuseType,
            MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOATIME, options.c_str()) != 0) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("cannot mount FUSE at ", m->mountpoint));
    close(m->fd);
    fuse_session_destroy(m->se);
    m->se = nullptr;
    return st;
  }
  auto fail = [&](absl::string_view what) {
    umount2(m->mountpoint.c_str(), MNT_DETACH);
    fuse_session_destroy(m->se);  // closes the fd once custom I/O took it
    m->se = nullptr;
    return absl::InternalError(absl::StrCat("FUSE mount at ", m->mountpoint, ": ", what));
  };
  if (fuse_session_custom_io(m->se, &FuseIo(), m->fd) != 0) {
    close(m->fd);
    return fail("custom I/O refused");
  }
  // The kernel queued FUSE_INIT at mount: read and answer it here (the fd still blocks),
  // keeping its bytes for whoever takes this connection over later.
  m->capture_init = true;
  fuse_buf buf;
  std::memset(&buf, 0, sizeof(buf));
  int res = fuse_session_receive_buf(m->se, &buf);
  if (res <= 0 || m->init.empty()) {
    free(buf.mem);
    return fail("no FUSE_INIT from the kernel");
  }
  if (passthrough) StartPassthrough(m);  // before the INIT reply, which turns it on
  fuse_session_process_buf(m->se, &buf);
  free(buf.mem);
  SetReadahead(m->mountpoint);
  if (holder_ != nullptr && m->passthrough != nullptr) {
    absl::Status held =
        holder_->Put(TableName(m->mountpoint), std::string(kTableData), m->passthrough->fd());
    if (!held.ok()) {
      // A next server without the table could not open an inode open in passthrough
      // (the kernel wants its id): this mount opens nothing in passthrough.
      m->backing_failed = true;
      Log(LogLevel::kWarning, "fs",
          absl::StrCat(m->mountpoint,
                       ": passthrough table not handed to the fd holder: no passthrough "
                       "on this mount: ",
                       held.message()));
    }
  }
  if (holder_ != nullptr) {
    absl::Status held = holder_->Put(m->mountpoint, absl::StrCat(kHeldPrefix, m->init), m->fd);
    if (!held.ok()) {
      Log(LogLevel::kWarning, "fs",
          absl::StrCat(m->mountpoint,
                       ": not handed to the fd holder (will not survive a "
                       "daemon restart): ",
                       held.message()));
    }
  }
  return absl::OkStatus();
}

void FuseServer::StartPassthrough(Mounted* m) {
  if (!InitOffersPassthrough(m->init)) {
    passthrough_log_.Log(LogLevel::kInfo, "fs",
                         "this kernel offers no FUSE passthrough (Linux < 6.9, or "
                         "CONFIG_FUSE_PASSTHROUGH off): local files are read through the daemon");
    return;
  }
  absl::StatusOr<std::unique_ptr<PassthroughTable>> t = PassthroughTable::Create(m->fs->inodes());
  if (!t.ok()) {
    Log(LogLevel::kWarning, "fs",
        absl::StrCat(m->mountpoint, ": no passthrough: ", t.status().message()));
    return;
  }
  m->passthrough = *std::move(t);
}

absl::StatusOr<FuseServer::MountId> FuseServer::Mount(const std::string& mountpoint,
                                                      std::shared_ptr<const LayerFs> fs,
                                                      bool passthrough) {
  auto m = std::make_unique<Mounted>();
  m->mountpoint = mountpoint;
  m->fs = std::move(fs);
  std::optional<HeldFd> held, table;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = offered_.find(mountpoint); it != offered_.end()) {
      held = it->second;
      offered_.erase(it);
    }
    if (auto it = offered_tables_.find(mountpoint); it != offered_tables_.end()) {
      table = it->second;
      offered_tables_.erase(it);
    }
  }
  if (held) {
    absl::Status adopted = Adopt(m.get(), *std::move(held), table);
    if (adopted.ok()) {
      // An earlier server detached it (DetachFrom): it is no longer at the mountpoint and
      // lives for the containers that hold it; their going ends it.
      if (!ClipFuseOnTop(mountpoint)) {
        absl::MutexLock lock(&m->mu);
        m->detached = true;
      }
      return Serve(std::move(m));
    }
    Log(LogLevel::kWarning, "fs", absl::StrCat(adopted.message(), "; mounting again"));
    if (holder_ != nullptr) (void)holder_->Drop(mountpoint);
  }
  if (table) {  // a table without (or with a failed) connection: stale
    if (table->fd >= 0) close(table->fd);
    if (holder_ != nullptr) (void)holder_->Drop(TableName(mountpoint));
  }
  CLIP_RETURN_IF_ERROR(MountFresh(m.get(), passthrough));
  return Serve(std::move(m));
}

absl::StatusOr<FuseServer::MountId> FuseServer::Serve(std::unique_ptr<Mounted> m) {
  fcntl(m->fd, F_SETFL, fcntl(m->fd, F_GETFL) | O_NONBLOCK);
  Mounted* raw = m.get();
  MountId id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    mounts_[id] = std::move(m);
  }
  // Events carry the mount's id, not a pointer: a worker looks it up under mu_, so
  // Unmount can free a mount a worker was just woken for.
  epoll_event ev;
  std::memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, raw->fd, &ev) != 0) {
    absl::Status st = ErrnoToStatus(errno, "epoll_ctl");
    umount2(raw->mountpoint.c_str(), MNT_DETACH);
    DropHeld(raw);
    fuse_session_destroy(raw->se);
    absl::MutexLock lock(&mu_);
    mounts_.erase(id);
    return st;
  }
  absl::MutexLock lock(&mu_);
  if (raw->adopted) ++adopted_;
  return id;
}

size_t FuseServer::adopted() const {
  absl::MutexLock lock(&mu_);
  return adopted_;
}

bool FuseServer::IsAdopted(MountId id) const {
  absl::MutexLock lock(&mu_);
  auto it = mounts_.find(id);
  return it != mounts_.end() && it->second->adopted;
}

void FuseServer::Detach() {
  {
    absl::MutexLock lock(&mu_);
    detached_ = true;
  }
  stop_ = true;
  for (auto& t : workers_) t.join();  // each finishes the request it serves
  workers_.clear();
}

void FuseServer::Retire(Mounted* m) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, m->fd, nullptr);
  bool detached;
  {
    absl::MutexLock lock(&m->mu);
    detached = m->detached;
  }
  // The kernel let go of the connection: nothing is left to take over.
  if (detached) {
    Log(LogLevel::kInfo, "fs",
        absl::StrCat(m->mountpoint, ": the last user of the detached FUSE mount is gone"));
  } else {
    Log(LogLevel::kWarning, "fs",
        absl::StrCat(m->mountpoint,
                     ": the FUSE connection ended without clip unmounting it (unmounted from "
                     "outside, or aborted): files open on it see ENOTCONN"));
  }
  DropHeld(m);  // before it counts as ended, so a waiter sees the holder let go
  absl::MutexLock lock(&m->mu);
  m->ended = true;
}

void FuseServer::DropHeld(Mounted* m) {
  if (holder_ == nullptr) return;
  (void)holder_->Drop(m->mountpoint);
  if (m->passthrough != nullptr) (void)holder_->Drop(TableName(m->mountpoint));
}

absl::Status FuseServer::DetachFrom(MountId id, const std::string& replacement) {
  Mounted* m;
  {
    absl::MutexLock lock(&mu_);
    auto it = mounts_.find(id);
    if (it == mounts_.end()) return absl::NotFoundError(absl::StrCat("no mount ", id));
    m = it->second.get();
    absl::MutexLock mounted(&m->mu);
    if (m->closing) return absl::OkStatus();
    // (Again for one taken over detached, or ended: an earlier server may have died
    // between the lazy unmount and the bind.)
    m->detached = true;
  }
  std::vector<MountEntry> mounts = ParseMountinfo(ReadMountinfo());
  const MountEntry* top = TopMountAt(mounts, m->mountpoint);
  if (top != nullptr && top->fstype == kClipFuseType) {
    // The replacement goes beneath the FUSE mount first, then the FUSE mount leaves: a
    // path looked up meanwhile (a container starting) finds one or the other, never an
    // empty directory.
    return ReplaceTopMount(replacement, m->mountpoint);
  }
  if (top == nullptr &&
      mount(replacement.c_str(), m->mountpoint.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("bind ", replacement, " at ", m->mountpoint));
  }
  return absl::OkStatus();
}

bool FuseServer::MountState(MountId id, bool Mounted::*flag, bool if_freed) const {
  absl::MutexLock lock(&mu_);
  auto it = mounts_.find(id);
  if (it == mounts_.end()) return if_freed;
  absl::MutexLock mounted(&it->second->mu);
  return it->second.get()->*flag;
}

bool FuseServer::Detached(MountId id) const {
  return MountState(id, &Mounted::detached, /*if_freed=*/false);
}

bool FuseServer::Ended(MountId id) const {
  return MountState(id, &Mounted::ended, /*if_freed=*/true);
}

void FuseServer::Worker() {
  fuse_buf buf;
  std::memset(&buf, 0, sizeof(buf));
  while (!stop_) {
    epoll_event ev;
    int n = epoll_wait(epoll_fd_, &ev, 1, 200);
    if (n <= 0) continue;
    const MountId id = ev.data.u64;
    Mounted* m;
    {
      absl::MutexLock lock(&mu_);  // mu_ before Mounted::mu
      auto it = mounts_.find(id);
      if (it == mounts_.end()) continue;  // unmounted and freed meanwhile
      m = it->second.get();
      absl::MutexLock mounted(&m->mu);
      if (m->closing || m->ended) continue;
      ++m->inflight;
    }
    int res = fuse_session_receive_buf(m->se, &buf);
    bool rearm = res == -EAGAIN || res == -EINTR || res > 0;
    if (rearm && !fuse_session_exited(m->se)) {
      epoll_event again;
      std::memset(&again, 0, sizeof(again));
      again.events = EPOLLIN | EPOLLONESHOT;
      again.data.u64 = id;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, m->fd, &again);
      if (res > 0) fuse_session_process_buf(m->se, &buf);
    } else {
      Retire(m);  // 0 / -ENODEV: unmounted from outside.
    }
    absl::MutexLock lock(&m->mu);
    --m->inflight;
  }
  free(buf.mem);
}

absl::Status FuseServer::Unmount(MountId id) {
  Mounted* m;
  {
    absl::MutexLock lock(&mu_);
    if (detached_) return absl::OkStatus();  // handed over: the next server owns it
    auto it = mounts_.find(id);
    if (it == mounts_.end()) return absl::NotFoundError(absl::StrCat("no mount ", id));
    m = it->second.get();
  }
  {
    absl::MutexLock lock(&m->mu);
    if (m->closing) return absl::OkStatus();
    m->closing = true;
  }
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, m->fd, nullptr);
  {
    absl::MutexLock lock(&m->mu);
    m->mu.Await(absl::Condition(
        +[](Mounted* x) ABSL_EXCLUSIVE_LOCKS_REQUIRED(x->mu) { return x->inflight == 0; }, m));
  }
  // Lazy unmount, then the last fds go (ours and the holder's), so open files get
  // ENOTCONN, never a hang.
  // (Or the replacement of DetachFrom; both when a server died with the replacement
  // beneath the FUSE mount: everything at the mountpoint is this mount's.)
  UnmountStack(m->mountpoint);
  DropHeld(m);
  fuse_session_destroy(m->se);
  // No worker holds it (closing, nothing in flight; workers look mounts up under mu_):
  // the layer's state goes with it.
  absl::MutexLock lock(&mu_);
  mounts_.erase(id);
  return absl::OkStatus();
}

bool FuseServer::WaitUnmounted(MountId id, absl::Duration timeout) {
  Mounted* m;
  {
    absl::MutexLock lock(&mu_);
    auto it = mounts_.find(id);
    if (it == mounts_.end()) return true;
    m = it->second.get();
  }
  absl::MutexLock lock(&m->mu);
  return m->mu.AwaitWithTimeout(absl::Condition(&m->ended), timeout);
}

size_t FuseServer::mounts() const {
  absl::MutexLock lock(&mu_);
  return mounts_.size();
}

}  // namespace clip
