#define FUSE_USE_VERSION 314

#include "fs/fuse_server.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/mountinfo.h"
#include "common/status_macros.h"
#include "fs/passthrough.h"

namespace clip {

namespace {

constexpr double kTimeout = 86400;  // Layers are immutable: cache for a day.

}  // namespace

struct FuseServer::Mounted {
  std::string mountpoint;
  std::shared_ptr<const LayerFs> fs;
  fuse_session* se = nullptr;
  int fd = -1;
  // The kernel's FUSE_INIT request as read (raw bytes), for a later takeover; filled by
  // the custom read while `capture_init` (only in Mount, before any worker reads).
  std::string init;
  bool capture_init = false;
  bool adopted = false;
  // Opens are answered (not ENOSYS) and counted here, in passthrough where the tree has
  // the file; null: zero-message opens (passthrough off, unavailable, or taken over
  // without the table).
  std::unique_ptr<PassthroughTable> passthrough;
  std::atomic<bool> backing_failed{false};  // a backing file was refused: cached opens only
  absl::Mutex mu;
  bool closing ABSL_GUARDED_BY(mu) = false;
  bool detached ABSL_GUARDED_BY(mu) = false;  // DetachFrom: served until the kernel lets go
  bool ended ABSL_GUARDED_BY(mu) = false;
  int inflight ABSL_GUARDED_BY(mu) = 0;
  RateLimitedLog log{absl::Seconds(10)};
};

namespace {

// Per-operation metrics (clip_fuse_ops_total, clip_fuse_op_errors_total,
// clip_fuse_op_duration_seconds by op) in the process-wide registry. An op runs on one
// worker thread from entry to reply, so the op in progress is a thread_local.
enum Op {
  kLookup,
  kGetattr,
  kReadlink,
  kOpen,
  kRelease,
  kRead,
  kOpendir,
  kReaddir,
  kReaddirplus,
  kReleasedir,
  kGetxattr,
  kListxattr,
  kStatfs,
  kOpCount
};
constexpr const char* kOpNames[kOpCount] = {
    "lookup",  "getattr",     "readlink",   "open",     "release",   "read",  "opendir",
    "readdir", "readdirplus", "releasedir", "getxattr", "listxattr", "statfs"};

struct OpMetrics {
  Counter* ops;
  Counter* errors;
  Histogram* seconds;
};

const OpMetrics& MetricsOf(Op op) {
  static const std::array<OpMetrics, kOpCount> all = [] {
    std::array<OpMetrics, kOpCount> a;
    MetricsRegistry& r = DefaultMetrics();
    for (int i = 0; i < kOpCount; ++i) {
      MetricLabels l = {{"op", kOpNames[i]}};
      a[i] = {&r.GetCounter("clip_fuse_ops_total", "FUSE operations served", l),
              &r.GetCounter("clip_fuse_op_errors_total",
                            "FUSE operations that failed (EIO and the like; not ENOENT, "
                            "ENODATA, ERANGE)",
                            l),
              &r.GetHistogram("clip_fuse_op_duration_seconds", "FUSE operation latency", l)};
    }
    return a;
  }();
  return all[op];
}

thread_local Op current_op = kOpCount;

class OpScope {
 public:
  explicit OpScope(Op op) : op_(op), start_(absl::Now()) { current_op = op; }
  ~OpScope() {
    const OpMetrics& m = MetricsOf(op_);
    m.ops->Increment();
    m.seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start_));
    current_op = kOpCount;
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  const Op op_;
  const absl::Time start_;
};

// Counts a failed reply of the op in progress; returns `e` for fuse_reply_err. "No such
// file" (ENOENT), "no such attribute" (ENODATA) and "buffer too small" (ERANGE) are
// answers, not failures: an alert on clip_fuse_op_errors_total must not fire on them.
int Err(int e) {
  const bool answer = e == ENOENT || e == ENODATA || e == ERANGE;
  if (e != 0 && !answer && current_op != kOpCount) MetricsOf(current_op).errors->Increment();
  return e;
}

FuseServer::Mounted* M(fuse_req_t req) {
  return static_cast<FuseServer::Mounted*>(fuse_req_userdata(req));
}

void ToStat(const Attr& a, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = a.ino;
  st->st_mode = a.mode;
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_size = static_cast<off_t>(a.size);
  st->st_rdev = a.rdev;
  st->st_blksize = a.blksize;
  st->st_blocks = static_cast<blkcnt_t>(a.blocks);
  st->st_mtim.tv_sec = a.mtime_sec;
  st->st_mtim.tv_nsec = a.mtime_nsec;
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

fuse_entry_param Entry(const Attr& a) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof(e));
  e.ino = a.ino;
  e.generation = 1;
  e.attr_timeout = kTimeout;
  e.entry_timeout = kTimeout;
  ToStat(a, &e.attr);
  return e;
}

// Replies libfuse 3.14 cannot express, patched in the custom writev of the same thread:
// set by an op just before its fuse_reply_*, read and cleared by the next write.
thread_local bool t_enable_passthrough = false;
thread_local int32_t t_backing_id = 0;

void OpInit(void* userdata, fuse_conn_info* conn) {
  if (static_cast<FuseServer::Mounted*>(userdata)->passthrough != nullptr) {
    t_enable_passthrough = true;
  }
  // Large reads: the kernel may ask for up to 1 MiB at once where it can.
  conn->max_readahead = 1 << 20;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  // Layers never change: the kernel may keep symlink targets like file pages.
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  // ... and need not look at attributes again before reading cached pages (libfuse
  // asks for auto_inval_data by default: every read() would check them).
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  OpScope scope(kLookup);
  absl::StatusOr<Attr> a = M(req)->fs->Lookup(parent, name);
  if (a.ok()) {
    fuse_entry_param e = Entry(*a);
    fuse_reply_entry(req, &e);
  } else if (a.status().code() == absl::StatusCode::kNotFound) {
    // A negative entry, cached as long as a positive one: the layer never changes.
    fuse_entry_param e;
    std::memset(&e, 0, sizeof(e));
    e.entry_timeout = kTimeout;
    fuse_reply_entry(req, &e);
  } else {
    fuse_reply_err(req, Err(StatusToErrno(a.status())));
  }
}

void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }

void OpForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  OpScope scope(kGetattr);
  absl::StatusOr<Attr> a = M(req)->fs->GetAttr(ino);
  if (!a.ok()) {
    fuse_reply_err(req, Err(StatusToErrno(a.status())));
    return;
  }
  struct stat st;
  ToStat(*a, &st);
  fuse_reply_attr(req, &st, kTimeout);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  OpScope scope(kReadlink);
  absl::StatusOr<std::string> t = M(req)->fs->ReadLink(ino);
  if (!t.ok()) {
    fuse_reply_err(req, Err(StatusToErrno(t.status())));
    return;
  }
  fuse_reply_readlink(req, t->c_str());
}

// Zero-message opens: the first open of a readable file is answered ENOSYS, which the
// kernel takes as success for this and every later open (FUSE_CAP_NO_OPEN_SUPPORT),
// keeping pages across opens (FOPEN_KEEP_CACHE is its default then) and sending no
// OPEN, FLUSH or RELEASE again: a page-cache hit costs no round trip to this daemon.
// Handles are stateless (fh 0), so a server that takes over understands them.
//
// With passthrough (fs/passthrough.h), every open is answered instead, so that a file
// opened once the layer's tree exists can be opened onto the tree's file: in cached mode
// (keep_cache, handle kCachedHandle) or in passthrough (kPassthroughHandle), as the
// table of the inode's open files allows; never FLUSH (noflush). The price is one round
// trip per open while the layer is lazy.
void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  OpScope scope(kOpen);
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, Err(EROFS));
    return;
  }
  FuseServer::Mounted* m = M(req);
  absl::Status s = m->fs->Open(ino);
  if (!s.ok()) {
    fuse_reply_err(req, Err(StatusToErrno(s)));
    return;
  }
  if (m->passthrough == nullptr) {
    fuse_reply_err(req, ENOSYS);  // "open needs no server": not an error
    return;
  }
  const bool local = m->fs->uses_tree() && !m->backing_failed.load();
  PassthroughTable::Opened o = m->passthrough->Open(ino, local, [&]() -> absl::StatusOr<int32_t> {
    absl::StatusOr<int> fd = m->fs->OpenInTree(ino);
    if (!fd.ok()) return fd.status();
    absl::StatusOr<int32_t> id = OpenBacking(m->fd, *fd);
    close(*fd);
    if (!id.ok() && !m->backing_failed.exchange(true)) {
      Log(LogLevel::kWarning, "fs",
          absl::StrCat(m->mountpoint, ": the kernel refused a passthrough backing file (",
                       id.status().message(), "): files open through the daemon"));
    }
    return id;
  });
  fi->fh = o.handle;
  fi->noflush = 1;
  fi->keep_cache = o.handle == kCachedHandle;
  if (o.handle == kPassthroughHandle) {
    t_backing_id = o.backing_id;
    static Counter& opens = DefaultMetrics().GetCounter(
        "clip_fuse_passthrough_opens_total",
        "files opened in FUSE passthrough (onto a local tree's file; their reads skip the daemon)");
    opens.Increment();
  }
  fuse_reply_open(req, fi);
}

// Only opens answered with a handle (passthrough on) are released.
void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  OpScope scope(kRelease);
  FuseServer::Mounted* m = M(req);
  fuse_reply_err(req, 0);
  if (m->passthrough != nullptr) m->passthrough->Release(ino, fi->fh);  // after the reply
}

// The reply's iovecs point into the cached spans (held by the slices until writev
// returns): the bytes go from the span to the kernel without a copy in this process.
void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  OpScope scope(kRead);
  FuseServer::Mounted* m = M(req);
  absl::StatusOr<std::vector<SpanSlice>> slices =
      m->fs->ReadSlices(ino, static_cast<uint64_t>(off), size);
  if (!slices.ok()) {
    m->log.Log(LogLevel::kError, "fs",
               absl::StrCat(m->fs->label(), " ", m->fs->PathOf(ino), ": read of ", size,
                            " bytes at ", off, " failed: ", slices.status().message()));
    const int e = StatusToErrno(slices.status());
    fuse_reply_err(req, Err(e == ENOENT ? EIO : e));
    return;
  }
  if (slices->empty()) {
    fuse_reply_buf(req, nullptr, 0);  // at or past the end
    return;
  }
  absl::InlinedVector<iovec, 4> iov;
  for (const SpanSlice& s : *slices) iov.push_back({const_cast<char*>(s.data), s.size});
  fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
}

// Directory handles are stateless (fh 0; every readdir lists the directory again, in
// the same order): a daemon that takes over a live mount must understand every handle
// the kernel still holds, and the kernel caches the listing anyway (cache_readdir).
void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  OpScope scope(kOpendir);
  absl::StatusOr<std::vector<DirEntry>> entries = M(req)->fs->ReadDir(ino);
  if (!entries.ok()) {
    fuse_reply_err(req, Err(StatusToErrno(entries.status())));
    return;
  }
  // As for files: ENOSYS makes every later opendir zero-message (no OPENDIR or
  // RELEASEDIR); the kernel then keeps and caches listings (FOPEN_CACHE_DIR).
  (void)fi;
  fuse_reply_err(req, ENOSYS);
}

// Entry i of the listing: 0 is ".", 1 is "..", then the children.
void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  FuseServer::Mounted* m = M(req);
  absl::StatusOr<std::vector<DirEntry>> entries = m->fs->ReadDir(ino);
  if (!entries.ok()) {
    fuse_reply_err(req, Err(StatusToErrno(entries.status())));
    return;
  }
  std::string buf(size, '\0');
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < entries->size() + 2; ++i) {
    Attr a;
    const char* name;
    if (i < 2) {
      absl::StatusOr<Attr> self = m->fs->GetAttr(ino);
      if (!self.ok()) break;
      a = *self;
      name = i == 0 ? "." : "..";
    } else {
      a = (*entries)[i - 2].attr;
      name = (*entries)[i - 2].name.c_str();
    }
    size_t n;
    if (plus) {
      fuse_entry_param e = Entry(a);
      if (i < 2) std::memset(&e, 0, sizeof(e)), e.attr.st_ino = a.ino, e.attr.st_mode = a.mode;
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e,
                                 static_cast<off_t>(i + 1));
    } else {
      struct stat st;
      ToStat(a, &st);
      n = fuse_add_direntry(req, buf.data() + used, size - used, name, &st,
                            static_cast<off_t>(i + 1));
    }
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  OpScope scope(kReaddir);
  ReadDirCommon(req, ino, size, off, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  OpScope scope(kReaddirplus);
  ReadDirCommon(req, ino, size, off, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  OpScope scope(kReleasedir);
  fuse_reply_err(req, Err(0));
}

// A layer without any extended attribute answers ENOSYS: the kernel then fails every
// later getxattr on this mount with EOPNOTSUPP itself, without a round trip. That matters
// because overlayfs asks its lower layers for its own attributes (opaque, redirect,
// metacopy) on nearly every lookup, and the kernel caches neither value nor absence.
// listxattr still answers (an empty list), so tools that list first see no difference.
void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  OpScope scope(kGetxattr);
  if (!M(req)->fs->has_xattrs()) {
    fuse_reply_err(req, ENOSYS);  // "no xattrs here, ever": not an error
    return;
  }
  absl::StatusOr<std::string> v = M(req)->fs->GetXattr(ino, name);
  if (!v.ok()) {
    fuse_reply_err(req, Err(StatusToErrno(v.status())));
  } else if (size == 0) {
    fuse_reply_xattr(req, v->size());
  } else if (size < v->size()) {
    fuse_reply_err(req, Err(ERANGE));
  } else {
    fuse_reply_buf(req, v->data(), v->size());
  }
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  OpScope scope(kListxattr);
  absl::StatusOr<std::vector<std::string>> names = M(req)->fs->ListXattr(ino);
  if (!names.ok()) {
    fuse_reply_err(req, Err(StatusToErrno(names.status())));
    return;
  }
  std::string all;
  for (const auto& n : *names) {
    all += n;
    all.push_back('\0');
  }
  if (size == 0) {
    fuse_reply_xattr(req, all.size());
  } else if (size < all.size()) {
    fuse_reply_err(req, Err(ERANGE));
  } else {
    fuse_reply_buf(req, all.data(), all.size());
  }
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  OpScope scope(kStatfs);
  FsStats s = M(req)->fs->Stats();
  struct statvfs st;
  std::memset(&st, 0, sizeof(st));
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_blocks = (s.bytes + 4095) / 4096;
  st.f_files = s.files;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

// FUSE protocol facts used by the takeover (Debian's linux/fuse.h stops at 7.38).
constexpr size_t kInHeaderSize = 40;      // fuse_in_header: len, opcode, unique, nodeid, ...
constexpr uint32_t kOpInit = 26;          // FUSE_INIT
constexpr uint32_t kInitExt = 1u << 30;   // FUSE_INIT_EXT: flags2 is valid
constexpr uint32_t kHasResend = 1u << 7;  // FUSE_HAS_RESEND (bit 39) in flags2
constexpr int32_t kNotifyResend = 7;      // FUSE_NOTIFY_RESEND, protocol 7.40 (Linux 6.9)
// The unique of the replayed INIT: the kernel's uniques count by 2 and use bits 0 and
// 63 as flags, so this never collides; its reply is dropped.
constexpr uint64_t kReplayUnique = uint64_t{1} << 62;
// What the holder keeps per mount: this prefix (the layout version), then the INIT.
constexpr absl::string_view kHeldPrefix = "clip-fuse-init-v1\n";
// A mount's passthrough table is held as kTableName + mountpoint (no ':', so systemd's
// store takes it; not a path, so older servers ignore it), data kTableData.
constexpr absl::string_view kTableName = "passthrough-table";
constexpr absl::string_view kTableData = "clip-passthrough-v1";

std::string TableName(const std::string& mountpoint) {
  return absl::StrCat(kTableName, mountpoint);
}

uint32_t U32At(absl::string_view b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, sizeof(v));
  return v;
}

ssize_t IoRead(int fd, void* buf, size_t len, void* userdata) {
  ssize_t n = read(fd, buf, len);
  auto* m = static_cast<FuseServer::Mounted*>(userdata);
  if (n >= static_cast<ssize_t>(kInHeaderSize) && m->capture_init) {
    absl::string_view req(static_cast<const char*>(buf), static_cast<size_t>(n));
    if (U32At(req, 4) == kOpInit) m->init.assign(req.data(), req.size());
    m->capture_init = false;
  }
  return n;
}

ssize_t IoWritev(int fd, iovec* iov, int count, void*) {
  const bool enable_passthrough = std::exchange(t_enable_passthrough, false);
  const int32_t backing_id = std::exchange(t_backing_id, 0);
  if (enable_passthrough) EnablePassthroughInReply(iov, count);
  if (backing_id != 0) SetBackingIdInOpenReply(iov, count, backing_id);
  if (count > 0 && iov[0].iov_len >= 16) {
    uint64_t unique;
    std::memcpy(&unique, static_cast<const char*>(iov[0].iov_base) + 8, sizeof(unique));
    if (unique == kReplayUnique) {  // libfuse's answer to the replayed INIT: not the kernel's
      ssize_t total = 0;
      for (int i = 0; i < count; ++i) total += static_cast<ssize_t>(iov[i].iov_len);
      return total;
    }
  }
  return writev(fd, iov, count);
}

// The same I/O for first and later servers, so they negotiate identically (custom I/O
// also means no splice in libfuse 3.14).
const fuse_custom_io& Io() {
  static const fuse_custom_io io = [] {
    fuse_custom_io i;
    std::memset(&i, 0, sizeof(i));
    i.read = IoRead;
    i.writev = IoWritev;
    return i;
  }();
  return io;
}

const fuse_lowlevel_ops& Ops() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o;
    std::memset(&o, 0, sizeof(o));
    o.init = OpInit;
    o.lookup = OpLookup;
    o.forget = OpForget;
    o.forget_multi = OpForgetMulti;
    o.getattr = OpGetattr;
    o.readlink = OpReadlink;
    o.open = OpOpen;
    o.release = OpRelease;
    o.read = OpRead;
    o.opendir = OpOpendir;
    o.readdir = OpReaddir;
    o.readdirplus = OpReaddirplus;
    o.releasedir = OpReleasedir;
    o.getxattr = OpGetxattr;
    o.listxattr = OpListxattr;
    o.statfs = OpStatfs;
    return o;
  }();
  return ops;
}

}  // namespace

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

void FuseServer::OfferHeld(std::vector<HeldFd> held) {
  absl::MutexLock lock(&mu_);
  for (HeldFd& h : held) {
    std::map<std::string, HeldFd>* to = &offered_;
    absl::string_view name = h.name;
    if (absl::ConsumePrefix(&name, kTableName)) to = &offered_tables_;
    if (name.empty() || name[0] != '/') {
      close(h.fd);
      continue;
    }
    auto [it, added] = to->try_emplace(std::string(name), h);
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

namespace {

// The device ("major:minor") of the newest mount at `mountpoint`, from
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
  m->se = fuse_session_new(&args, &Ops(), sizeof(fuse_lowlevel_ops), m);
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
  if (mount("clip", m->mountpoint.c_str(), "fuse.clip",
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
  if (fuse_session_custom_io(m->se, &Io(), m->fd) != 0) {
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
  if (init.size() < kInHeaderSize + 16 || U32At(init, 0) != init.size() ||
      U32At(init, 4) != kOpInit) {
    return fail("saved FUSE_INIT is malformed");
  }
  const char* argv[] = {"clip", "-o",
                        "ro,allow_other,default_permissions,fsname=clip,subtype=clip,noatime"};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  m->se = fuse_session_new(&args, &Ops(), sizeof(fuse_lowlevel_ops), m);
  fuse_opt_free_args(&args);
  if (m->se == nullptr) return fail("fuse_session_new failed");
  if (fuse_session_custom_io(m->se, &Io(), m->fd) != 0) return fail("custom I/O refused");
  // libfuse answers everything with EIO until it has seen an INIT: replay the kernel's
  // own (same buffer sizes, max_write, max_pages, capabilities), reply dropped.
  std::memcpy(init.data() + 8, &kReplayUnique, sizeof(kReplayUnique));
  fuse_buf buf;
  std::memset(&buf, 0, sizeof(buf));
  buf.size = init.size();
  buf.mem = init.data();
  fuse_session_process_buf(m->se, &buf);
  // Every request the dead server had read but not answered: queued again.
  const uint32_t flags = U32At(init, kInHeaderSize + 12);
  const uint32_t flags2 = init.size() >= kInHeaderSize + 20 ? U32At(init, kInHeaderSize + 16) : 0;
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
    if (adopted.ok()) return Serve(std::move(m));
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
    m->ended = true;
    detached = m->detached;
  }
  if (detached) {  // the last user of a detached mount is gone: nothing to take over
    Log(LogLevel::kInfo, "fs",
        absl::StrCat(m->mountpoint, ": the last user of the detached FUSE mount is gone"));
    DropHeld(m);
  }
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
    if (m->closing || m->ended || m->detached) return absl::OkStatus();
    m->detached = true;
  }
  std::vector<MountEntry> mounts = ParseMountinfo(ReadMountinfo());
  const MountEntry* top = TopMountAt(mounts, m->mountpoint);
  if (top != nullptr && top->fstype == "fuse.clip" &&
      umount2(m->mountpoint.c_str(), MNT_DETACH) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("detach the FUSE mount at ", m->mountpoint));
  }
  mounts = ParseMountinfo(ReadMountinfo());
  if (TopMountAt(mounts, m->mountpoint) == nullptr &&
      mount(replacement.c_str(), m->mountpoint.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("bind ", replacement, " at ", m->mountpoint));
  }
  return absl::OkStatus();
}

bool FuseServer::Ended(MountId id) const {
  absl::MutexLock lock(&mu_);
  auto it = mounts_.find(id);
  if (it == mounts_.end()) return true;
  absl::MutexLock mounted(&it->second->mu);
  return it->second->ended;
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
  umount2(m->mountpoint.c_str(), MNT_DETACH);  // (or the replacement of DetachFrom)
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
