#define FUSE_USE_VERSION 314

#include "fs/fuse_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "fs/fuse_handover.h"
#include "fs/fuse_mount.h"
#include "fs/fuse_protocol.h"
#include "fs/passthrough.h"

namespace clip {
namespace {

using fuse_protocol::kInHeaderSize;
using fuse_protocol::kOpInit;
using fuse_protocol::U32At;

constexpr double kTimeout = 86400;  // Layers are immutable: cache for a day.

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
  // Counted as it starts, so the count of a request is there before its reply (a test
  // that reads it after its syscall returns sees it).
  explicit OpScope(Op op) : op_(op), start_(absl::Now()) {
    current_op = op;
    MetricsOf(op).ops->Increment();
  }
  ~OpScope() {
    MetricsOf(op_).seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start_));
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

FuseMount* M(fuse_req_t req) { return static_cast<FuseMount*>(fuse_req_userdata(req)); }

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
  if (static_cast<FuseMount*>(userdata)->passthrough != nullptr) {
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
  FuseMount* m = M(req);
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
  FuseMount* m = M(req);
  fuse_reply_err(req, 0);
  if (m->passthrough != nullptr) m->passthrough->Release(ino, fi->fh);  // after the reply
}

// The reply's iovecs point into the cached spans (held by the slices until writev
// returns): the bytes go from the span to the kernel without a copy in this process.
void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  OpScope scope(kRead);
  FuseMount* m = M(req);
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
  FuseMount* m = M(req);
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

ssize_t IoRead(int fd, void* buf, size_t len, void* userdata) {
  ssize_t n = read(fd, buf, len);
  auto* m = static_cast<FuseMount*>(userdata);
  if (n >= static_cast<ssize_t>(kInHeaderSize) && m->capture_init) {
    absl::string_view req(static_cast<const char*>(buf), static_cast<size_t>(n));
    if (U32At(req.data(), 4) == kOpInit) m->init.assign(req.data(), req.size());
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

const fuse_custom_io& IoOfMounts() {
  static const fuse_custom_io io = [] {
    fuse_custom_io i;
    std::memset(&i, 0, sizeof(i));
    i.read = IoRead;
    i.writev = IoWritev;
    return i;
  }();
  return io;
}

const fuse_lowlevel_ops& OpsOfMounts() {
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

const fuse_lowlevel_ops& FuseOps() { return OpsOfMounts(); }
const fuse_custom_io& FuseIo() { return IoOfMounts(); }

}  // namespace clip
