#include "snapshotter/overlay_snapshotter.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/remove_tree.h"
#include "common/status_macros.h"
#include "snapshotter/filters.h"
#include "snapshotter/snapshot_labels.h"

namespace clip {
namespace {

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

absl::Status NotFound(const std::string& key) {
  return absl::NotFoundError(absl::StrCat("snapshot ", key, " does not exist"));
}

}  // namespace

absl::Status ValidateLabels(const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (k.size() + v.size() > 4096) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label key and value greater than maximum size (4096 bytes), key: ", k.substr(0, 64)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SnapshotUsage> DiskUsage(const std::string& dir) {
  static thread_local std::set<std::pair<dev_t, ino_t>>* seen;
  static thread_local SnapshotUsage* usage;
  std::set<std::pair<dev_t, ino_t>> s;
  SnapshotUsage u;
  seen = &s;
  usage = &u;
  auto fn = +[](const char*, const struct stat* st, int, struct FTW*) -> int {
    if (seen->insert({st->st_dev, st->st_ino}).second) {
      ++usage->inodes;
      usage->size += static_cast<int64_t>(st->st_blocks) * 512;
    }
    return 0;
  };
  if (nftw(dir.c_str(), fn, 64, FTW_PHYS) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("usage of ", dir));
  }
  return u;
}

absl::StatusOr<std::unique_ptr<OverlaySnapshotter>> OverlaySnapshotter::Open(
    const std::string& root, RemoteLayerHook* remote) {
  CLIP_RETURN_IF_ERROR(MakeDir(root, 0700));
  CLIP_RETURN_IF_ERROR(MakeDir(root + "/snapshots", 0700));
  CLIP_ASSIGN_OR_RETURN(auto store, MetadataStore::Open(root + "/metadata.db"));
  std::unique_ptr<OverlaySnapshotter> s(new OverlaySnapshotter(root, std::move(store), remote));
  if (remote != nullptr) s->RestoreRemote();
  return s;
}

void OverlaySnapshotter::RestoreRemote() {
  std::vector<SnapshotRecord> all;
  absl::Status listed = store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(all, txn.All());
    return absl::OkStatus();
  });
  if (!listed.ok()) {
    Log(LogLevel::kError, "snapshotter", absl::StrCat("restore: ", listed.message()));
    return;
  }
  for (const auto& r : all) {
    if (!r.info.labels.count(kRemoteLabel)) continue;
    std::string mnt = SnapshotDir(r.id) + "/fs";
    // The layer's live connection is taken over when the fd holder kept it; a stale
    // mount (a daemon that died without one) is detached and mounted again.
    absl::StatusOr<bool> m = remote_->Mount(r.info.labels, mnt);
    if (!m.ok() || !*m) {
      // Reported, and the other layers still come back.
      Log(LogLevel::kError, "snapshotter",
          absl::StrCat("cannot restore remote snapshot ", r.info.name, ": ",
                       m.ok() ? "its index is gone" : m.status().message()));
    }
  }
}

absl::Status OverlaySnapshotter::TryRemote(const std::string& parent, const Labels& labels) {
  auto ref = labels.find(kSnapshotRefLabel);
  if (remote_ == nullptr || ref == labels.end() || ref->second.empty()) return absl::OkStatus();
  const std::string target = ref->second;
  Labels marked = labels;
  marked[kRemoteLabel] = "true";
  int64_t id = -1;
  // 1. The record and its directory, in one transaction.
  absl::Status created = store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto existing, txn.Get(target));
    if (existing) {
      return absl::AlreadyExistsError(absl::StrCat("target snapshot ", target, " already exists"));
    }
    if (!parent.empty()) {
      CLIP_ASSIGN_OR_RETURN(auto p, txn.Get(parent));
      if (!p || p->info.kind != SnapshotKind::kCommitted)
        return absl::OkStatus();  // ordinary path decides
    }
    SnapshotRecord r;
    r.info.name = target;
    r.info.parent = parent;
    r.info.kind = SnapshotKind::kCommitted;
    r.info.created = r.info.updated = absl::Now();
    r.info.labels = marked;
    CLIP_ASSIGN_OR_RETURN(id, txn.Insert(r));
    CLIP_RETURN_IF_ERROR(MakeDir(SnapshotDir(id), 0700));
    return MakeDir(SnapshotDir(id) + "/fs", 0755);
  });
  if (!created.ok() || id < 0) return created;
  // 2. The mount (may fetch the index from the registry), outside the transaction.
  absl::StatusOr<bool> mounted = remote_->Mount(labels, SnapshotDir(id) + "/fs");
  if (mounted.ok() && *mounted) {
    return absl::AlreadyExistsError(absl::StrCat("target snapshot ", target, " already exists"));
  }
  if (!mounted.ok()) {
    Log(LogLevel::kWarning, "snapshotter",
        absl::StrCat("lazy mount of ", target,
                     " failed, pulling normally: ", mounted.status().message()));
  }
  // 3. Not lazy: undo, and let the ordinary path run.
  (void)store_->Transact([&](MetadataStore::Txn& txn) { return txn.Delete(id); });
  (void)RemoveTree(SnapshotDir(id));
  return absl::OkStatus();
}

std::string OverlaySnapshotter::SnapshotDir(int64_t id) const {
  return absl::StrCat(root_, "/snapshots/", id);
}

absl::StatusOr<SnapshotInfo> OverlaySnapshotter::Stat(const std::string& key) {
  SnapshotInfo info;
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(key));
    if (!r) return NotFound(key);
    info = r->info;
    return absl::OkStatus();
  }));
  return info;
}

absl::StatusOr<SnapshotInfo> OverlaySnapshotter::Update(const SnapshotInfo& info,
                                                        const std::vector<std::string>& paths) {
  CLIP_RETURN_IF_ERROR(ValidateLabels(info.labels));
  SnapshotInfo out;
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(info.name));
    if (!r) return NotFound(info.name);
    if (paths.empty()) {
      r->info.labels = info.labels;
    } else {
      for (const std::string& p : paths) {
        if (p == "labels") {
          r->info.labels = info.labels;
        } else if (absl::StartsWith(p, "labels.")) {
          std::string k = p.substr(7);
          auto it = info.labels.find(k);
          if (it == info.labels.end()) {
            r->info.labels.erase(k);
          } else {
            r->info.labels[k] = it->second;
          }
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("cannot update ", p, " field on snapshot ", info.name));
        }
      }
    }
    CLIP_RETURN_IF_ERROR(ValidateLabels(r->info.labels));
    r->info.updated = absl::Now();
    CLIP_RETURN_IF_ERROR(txn.Update(*r));
    out = r->info;
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<SnapshotUsage> OverlaySnapshotter::Usage(const std::string& key) {
  SnapshotRecord record;
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(key));
    if (!r) return NotFound(key);
    record = *r;
    return absl::OkStatus();
  }));
  if (record.info.kind == SnapshotKind::kActive) {
    return DiskUsage(SnapshotDir(record.id) + "/fs");
  }
  // A lazy layer's own directory is a FUSE mount of nothing local: its usage is what
  // this node keeps for it (index + cached spans), so image GC sees the disk it fills.
  if (remote_ != nullptr && record.info.labels.count(kRemoteLabel) > 0) {
    if (std::optional<SnapshotUsage> lazy = remote_->Usage(SnapshotDir(record.id) + "/fs")) {
      return *lazy;
    }
  }
  return SnapshotUsage{record.size, record.inodes};
}

absl::StatusOr<std::vector<MountSpec>> OverlaySnapshotter::MountsFor(MetadataStore::Txn& txn,
                                                                     const SnapshotRecord& r) {
  std::vector<std::string> lowers;  // top first
  std::string parent = r.info.parent;
  while (!parent.empty()) {
    CLIP_ASSIGN_OR_RETURN(auto p, txn.Get(parent));
    if (!p) return absl::InternalError(absl::StrCat("parent ", parent, " vanished"));
    std::string lower = SnapshotDir(p->id) + "/fs";
    if (remote_ != nullptr && p->info.labels.count(kRemoteLabel) > 0) {
      if (std::optional<std::string> tree = remote_->LocalTree(lower)) lower = *tree;
    }
    lowers.push_back(lower);
    parent = p->info.parent;
  }
  std::string dir = SnapshotDir(r.id);
  if (r.info.kind == SnapshotKind::kActive) {
    if (lowers.empty()) return std::vector<MountSpec>{{"bind", dir + "/fs", {"rw", "rbind"}}};
    return std::vector<MountSpec>{{"overlay",
                                   "overlay",
                                   {"index=off", absl::StrCat("workdir=", dir, "/work"),
                                    absl::StrCat("upperdir=", dir, "/fs"),
                                    absl::StrCat("lowerdir=", absl::StrJoin(lowers, ":"))}}};
  }
  if (r.info.kind == SnapshotKind::kView) {
    if (lowers.empty()) return std::vector<MountSpec>{{"bind", dir + "/fs", {"ro", "rbind"}}};
    if (lowers.size() == 1) return std::vector<MountSpec>{{"bind", lowers[0], {"ro", "rbind"}}};
    return std::vector<MountSpec>{
        {"overlay",
         "overlay",
         {"index=off", absl::StrCat("lowerdir=", absl::StrJoin(lowers, ":"))}}};
  }
  return absl::FailedPreconditionError(
      absl::StrCat("snapshot ", r.info.name, " is not active or a view"));
}

absl::StatusOr<std::vector<MountSpec>> OverlaySnapshotter::Create(SnapshotKind kind,
                                                                  const std::string& key,
                                                                  const std::string& parent,
                                                                  const Labels& labels) {
  if (key.empty()) return absl::InvalidArgumentError("snapshot key must not be empty");
  CLIP_RETURN_IF_ERROR(ValidateLabels(labels));
  // new-<pid>-*: Cleanup can tell a dead creator's leftovers from one in progress.
  std::string tmpl = absl::StrCat(root_, "/snapshots/new-", getpid(), "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  const std::string temp = tmpl;
  absl::Status made = MakeDir(temp + "/fs", 0755);
  if (made.ok() && kind == SnapshotKind::kActive) made = MakeDir(temp + "/work", 0711);
  if (!made.ok()) {
    (void)RemoveTree(temp);
    return made;
  }
  std::vector<MountSpec> mounts;
  absl::Status s = store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto existing, txn.Get(key));
    if (existing)
      return absl::AlreadyExistsError(absl::StrCat("snapshot ", key, " already exists"));
    if (!parent.empty()) {
      CLIP_ASSIGN_OR_RETURN(auto p, txn.Get(parent));
      if (!p)
        return absl::NotFoundError(absl::StrCat("parent snapshot ", parent, " does not exist"));
      if (p->info.kind != SnapshotKind::kCommitted) {
        return absl::InvalidArgumentError(
            absl::StrCat("parent ", parent, " is not a committed snapshot"));
      }
    }
    SnapshotRecord r;
    r.info.name = key;
    r.info.parent = parent;
    r.info.kind = kind;
    r.info.created = r.info.updated = absl::Now();
    r.info.labels = labels;
    CLIP_ASSIGN_OR_RETURN(r.id, txn.Insert(r));
    // An id can come back after a rolled-back insert (a crash before COMMIT); the
    // directory that crash left has no record and is garbage.
    CLIP_RETURN_IF_ERROR(RemoveTree(SnapshotDir(r.id)));
    if (rename(temp.c_str(), SnapshotDir(r.id).c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("rename to ", SnapshotDir(r.id)));
    }
    absl::StatusOr<std::vector<MountSpec>> m = MountsFor(txn, r);
    if (!m.ok()) {
      rename(SnapshotDir(r.id).c_str(), temp.c_str());  // back, for the cleanup below
      return m.status();
    }
    mounts = *std::move(m);
    return absl::OkStatus();
  });
  if (!s.ok()) {
    (void)RemoveTree(temp);
    return s;
  }
  return mounts;
}

absl::StatusOr<std::vector<MountSpec>> OverlaySnapshotter::Prepare(const std::string& key,
                                                                   const std::string& parent,
                                                                   const Labels& labels) {
  CLIP_RETURN_IF_ERROR(ValidateLabels(labels));
  CLIP_RETURN_IF_ERROR(TryRemote(parent, labels));
  return Create(SnapshotKind::kActive, key, parent, labels);
}

absl::StatusOr<std::vector<MountSpec>> OverlaySnapshotter::View(const std::string& key,
                                                                const std::string& parent,
                                                                const Labels& labels) {
  return Create(SnapshotKind::kView, key, parent, labels);
}

absl::StatusOr<std::vector<MountSpec>> OverlaySnapshotter::Mounts(const std::string& key) {
  std::vector<MountSpec> mounts;
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(key));
    if (!r) return NotFound(key);
    CLIP_ASSIGN_OR_RETURN(mounts, MountsFor(txn, *r));
    return absl::OkStatus();
  }));
  return mounts;
}

absl::Status OverlaySnapshotter::Commit(const std::string& name, const std::string& key,
                                        const Labels& labels) {
  if (name.empty()) return absl::InvalidArgumentError("commit name must not be empty");
  CLIP_RETURN_IF_ERROR(ValidateLabels(labels));
  // Usage is measured before the transaction (the active snapshot is no longer written:
  // containerd commits after unmounting).
  int64_t id = -1;
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(key));
    if (!r) return NotFound(key);
    id = r->id;
    return absl::OkStatus();
  }));
  CLIP_ASSIGN_OR_RETURN(SnapshotUsage usage, DiskUsage(SnapshotDir(id) + "/fs"));
  return store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(key));
    if (!r) return NotFound(key);
    if (r->info.kind != SnapshotKind::kActive) {
      return absl::FailedPreconditionError(absl::StrCat("snapshot ", key, " is not active"));
    }
    CLIP_ASSIGN_OR_RETURN(auto existing, txn.Get(name));
    if (existing)
      return absl::AlreadyExistsError(absl::StrCat("snapshot ", name, " already exists"));
    r->info.name = name;
    r->info.kind = SnapshotKind::kCommitted;
    r->info.labels = labels;
    r->info.created = r->info.updated = absl::Now();
    r->size = usage.size;
    r->inodes = usage.inodes;
    return txn.Update(*r);
  });
}

absl::Status OverlaySnapshotter::Remove(const std::string& key) {
  std::string removed;
  if (remote_ != nullptr) {
    // A lazy layer is unmounted first (only if it could be removed at all).
    SnapshotRecord record;
    int64_t children = 0;
    CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
      CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(key));
      if (!r) return NotFound(key);
      record = *r;
      CLIP_ASSIGN_OR_RETURN(children, txn.CountChildren(key));
      return absl::OkStatus();
    }));
    if (children == 0 && record.info.labels.count(kRemoteLabel)) {
      CLIP_RETURN_IF_ERROR(remote_->Unmount(SnapshotDir(record.id) + "/fs"));
    }
  }
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto r, txn.Get(key));
    if (!r) return NotFound(key);
    CLIP_ASSIGN_OR_RETURN(int64_t children, txn.CountChildren(key));
    if (children > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot remove snapshot ", key, " with ", children, " child(ren)"));
    }
    CLIP_RETURN_IF_ERROR(txn.Delete(r->id));
    removed = SnapshotDir(r->id);
    return absl::OkStatus();
  }));
  // Only after the commit: a crash before it keeps record and directory; after it, the
  // directory is a stray (no record) that Cleanup removes. Renaming first makes the
  // removal atomic for readers of the snapshots directory.
  std::string doomed = absl::StrCat(removed, "-rm");
  if (rename(removed.c_str(), doomed.c_str()) != 0) {
    return errno == ENOENT ? absl::OkStatus() : RemoveTree(removed);
  }
  return RemoveTree(doomed);
}

absl::Status OverlaySnapshotter::Walk(const std::vector<std::string>& filters,
                                      const std::function<absl::Status(const SnapshotInfo&)>& fn) {
  CLIP_ASSIGN_OR_RETURN(SnapshotFilter filter, SnapshotFilter::Parse(filters));
  // SQL narrows the rows (names, parents, labels); Match decides (kinds, expressions).
  const SnapshotFilter::Sql sql = filter.ToSql();
  std::vector<SnapshotRecord> all;
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(all, txn.Select(sql.where, sql.params));
    return absl::OkStatus();
  }));
  for (const SnapshotRecord& r : all) {
    if (filter.Match(r.info)) CLIP_RETURN_IF_ERROR(fn(r.info));
  }
  return absl::OkStatus();
}

absl::Status OverlaySnapshotter::Cleanup() {
  std::set<std::string> keep;
  CLIP_RETURN_IF_ERROR(store_->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(auto all, txn.All());
    for (const auto& r : all) keep.insert(absl::StrCat(r.id));
    return absl::OkStatus();
  }));
  std::string dir = root_ + "/snapshots";
  DIR* d = opendir(dir.c_str());
  if (!d) return ErrnoToStatus(errno, absl::StrCat("open ", dir));
  std::vector<std::string> stray;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || keep.count(n)) continue;
    // new-<pid>-*: being created right now unless its process is gone (or it is old).
    if (absl::StartsWith(n, "new-")) {
      int pid = 0;
      std::string rest = n.substr(4);
      bool alive = absl::SimpleAtoi(rest.substr(0, rest.find('-')), &pid) && pid > 0 &&
                   (kill(pid, 0) == 0 || errno != ESRCH);
      struct stat st;
      if (alive && stat((dir + "/" + n).c_str(), &st) == 0 &&
          absl::Now() - absl::FromTimeT(st.st_mtime) < absl::Minutes(5)) {
        continue;
      }
    }
    stray.push_back(n);
  }
  closedir(d);
  for (const auto& n : stray) CLIP_RETURN_IF_ERROR(RemoveTree(dir + "/" + n));
  return absl::OkStatus();
}

}  // namespace clip
