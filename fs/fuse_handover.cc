#define FUSE_USE_VERSION 314

// FuseServer's takeover half (what the holder hands back: fs/fuse_handover.h).
#include "fs/fuse_handover.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "fs/fuse_mount.h"
#include "fs/fuse_ops.h"
#include "fs/fuse_protocol.h"
#include "fs/fuse_server.h"
#include "fs/passthrough.h"

namespace clip {

using fuse_protocol::kHasResend;
using fuse_protocol::kInHeaderSize;
using fuse_protocol::kInitExt;
using fuse_protocol::kNotifyResend;
using fuse_protocol::kOpInit;
using fuse_protocol::U32At;

std::string TableName(const std::string& mountpoint) {
  return absl::StrCat(kTableName, mountpoint);
}

std::optional<std::string> MountpointOfTable(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, kTableName) || name.empty() || name[0] != '/') {
    return std::nullopt;
  }
  return std::string(name);
}

void FuseServer::OfferHeld(std::vector<HeldFd> held) {
  absl::MutexLock lock(&mu_);
  for (HeldFd& h : held) {
    std::map<std::string, HeldFd>* to = &offered_;
    std::string name = h.name;
    if (std::optional<std::string> of = MountpointOfTable(h.name)) {
      to = &offered_tables_;
      name = *of;
    }
    if (name.empty() || name[0] != '/') {
      close(h.fd);
      continue;
    }
    auto [it, added] = to->try_emplace(name, h);
    if (!added) {
      close(it->second.fd);
      it->second = h;
    }
  }
}

bool FuseServer::Offered(const std::string& mountpoint) const {
  absl::MutexLock lock(&mu_);
  return offered_.count(mountpoint) > 0;
}

void FuseServer::DropUnclaimed() {
  std::map<std::string, HeldFd> left, tables;
  {
    absl::MutexLock lock(&mu_);
    left.swap(offered_);
    tables.swap(offered_tables_);
  }
  for (auto& [mountpoint, held] : tables) {
    close(held.fd);
    if (holder_ != nullptr) (void)holder_->Drop(TableName(mountpoint));
  }
  for (auto& [mountpoint, held] : left) {
    Log(LogLevel::kWarning, "fs",
        absl::StrCat("held FUSE connection of ", mountpoint,
                     " belongs to no snapshot any more: unmounted"));
    umount2(mountpoint.c_str(), MNT_DETACH);
    close(held.fd);
    if (holder_ != nullptr) (void)holder_->Drop(mountpoint);
  }
}

absl::Status FuseServer::Adopt(Mounted* m, HeldFd held, std::optional<HeldFd>& table) {
  m->fd = held.fd;
  auto fail = [&](absl::string_view what) {
    if (m->se != nullptr) {
      fuse_session_destroy(m->se);  // closes the fd
      m->se = nullptr;
    } else {
      close(m->fd);
    }
    m->fd = -1;
    return absl::DataLossError(
        absl::StrCat("cannot take over the FUSE connection of ", m->mountpoint, ": ", what));
  };
  struct stat st;
  if (fstat(m->fd, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(10, 229)) {
    return fail("the held fd is not a /dev/fuse connection");
  }
  absl::string_view data = held.data;
  if (!absl::ConsumePrefix(&data, kHeldPrefix)) return fail("unknown holder data version");
  std::string init(data);
  if (init.size() < kInHeaderSize + 16 || U32At(init.data(), 0) != init.size() ||
      U32At(init.data(), 4) != kOpInit) {
    return fail("saved FUSE_INIT is malformed");
  }
  const char* argv[] = {"clip", "-o",
                        "ro,allow_other,default_permissions,fsname=clip,subtype=clip,noatime"};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  m->se = fuse_session_new(&args, &FuseOps(), sizeof(fuse_lowlevel_ops), m);
  fuse_opt_free_args(&args);
  if (m->se == nullptr) return fail("fuse_session_new failed");
  if (fuse_session_custom_io(m->se, &FuseIo(), m->fd) != 0) return fail("custom I/O refused");
  // libfuse answers everything with EIO until it has seen an INIT: replay the kernel's
  // own (same buffer sizes, max_write, max_pages, capabilities), reply dropped.
  std::memcpy(init.data() + 8, &kReplayUnique, sizeof(kReplayUnique));
  fuse_buf buf;
  std::memset(&buf, 0, sizeof(buf));
  buf.size = init.size();
  buf.mem = init.data();
  fuse_session_process_buf(m->se, &buf);
  // Every request the dead server had read but not answered: queued again.
  const uint32_t flags = U32At(init.data(), kInHeaderSize + 12);
  const uint32_t flags2 =
      init.size() >= kInHeaderSize + 20 ? U32At(init.data(), kInHeaderSize + 16) : 0;
  if ((flags & kInitExt) && (flags2 & kHasResend)) {
    struct {
      uint32_t len;
      int32_t error;
      uint64_t unique;
    } resend = {16, kNotifyResend, 0};
    if (write(m->fd, &resend, sizeof(resend)) != static_cast<ssize_t>(sizeof(resend))) {
      Log(LogLevel::kWarning, "fs",
          absl::StrCat(m->mountpoint, ": FUSE_NOTIFY_RESEND failed: ", strerror(errno)));
    }
  } else {
    Log(LogLevel::kWarning, "fs",
        absl::StrCat(m->mountpoint,
                     ": this kernel has no FUSE_NOTIFY_RESEND (Linux < 6.9): requests the "
                     "previous daemon had read but not answered stay blocked"));
  }
  // The passthrough table of this connection, if the first server had one; without it
  // (none, or unusable), opens are zero-message: always allowed, whatever is open.
  if (table) {
    absl::StatusOr<std::unique_ptr<PassthroughTable>> t =
        PassthroughTable::Attach(std::exchange(table->fd, -1));
    if (t.ok() && (*t)->inodes() != m->fs->inodes()) {
      t = absl::DataLossError(absl::StrCat("held passthrough table has ", (*t)->inodes(),
                                           " inodes, the layer ", m->fs->inodes()));
    }
    if (t.ok()) {
      m->passthrough = *std::move(t);
    } else {
      Log(LogLevel::kWarning, "fs",
          absl::StrCat(m->mountpoint, ": ", t.status().message(), "; opens without passthrough"));
      if (holder_ != nullptr) (void)holder_->Drop(TableName(m->mountpoint));
    }
  }
  m->adopted = true;
  return absl::OkStatus();
}

}  // namespace clip
