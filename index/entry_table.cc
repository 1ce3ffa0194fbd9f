#include "index/entry_table.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace clip {
namespace {

using index::v1::Entry;
using index::v1::EntryType;

constexpr size_t kNameMax = 255;
constexpr size_t kPathMax = 4095;

EntryType TypeOf(TarType t) {
  switch (t) {
    case TarType::kRegular:
      return index::v1::REGULAR;
    case TarType::kHardlink:
      return index::v1::HARDLINK;
    case TarType::kSymlink:
      return index::v1::SYMLINK;
    case TarType::kCharDevice:
      return index::v1::CHAR_DEVICE;
    case TarType::kBlockDevice:
      return index::v1::BLOCK_DEVICE;
    case TarType::kDirectory:
      return index::v1::DIRECTORY;
    case TarType::kFifo:
      return index::v1::FIFO;
  }
  return index::v1::ENTRY_TYPE_UNSPECIFIED;
}

// Splits "a/b/c" into ("a/b", "c"); ("", "c") for "c".
std::pair<absl::string_view, absl::string_view> SplitParent(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

void CopyMetadata(const TarMember& m, Entry* e) {
  e->set_mode(m.mode);
  e->set_uid(m.uid);
  e->set_gid(m.gid);
  e->set_uname(m.uname);
  e->set_gname(m.gname);
  e->set_mtime_sec(m.mtime_sec);
  e->set_mtime_nsec(m.mtime_nsec);
  e->clear_xattrs();
  for (const auto& [key, value] : m.xattrs) {
    auto* x = e->add_xattrs();
    x->set_key(key);
    x->set_value(value);
  }
}

}  // namespace

absl::StatusOr<std::string> NormalizeTarPath(absl::string_view raw) {
  if (raw.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("tar: member name contains a NUL byte");
  }
  std::string out;
  out.reserve(raw.size());
  for (absl::string_view part : absl::StrSplit(raw, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("tar: member name has a '..' component: ", raw.substr(0, 256)));
    }
    if (part.size() > kNameMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar: name component longer than ", kNameMax, " bytes"));
    }
    if (!out.empty()) out.push_back('/');
    absl::StrAppend(&out, part);
  }
  if (out.size() > kPathMax) {
    return absl::InvalidArgumentError(absl::StrCat("tar: path longer than ", kPathMax, " bytes"));
  }
  return out;
}

EntryTable::EntryTable() {
  Entry root;
  root.set_type(index::v1::DIRECTORY);
  root.set_mode(0755);
  root.set_implicit(true);
  entries_.push_back(std::move(root));
  removed_.push_back(false);
  by_path_[""] = 0;
}

absl::StatusOr<uint32_t> EntryTable::EnsureDirectory(absl::string_view path) {
  auto it = by_path_.find(path);
  if (it != by_path_.end()) {
    if (entries_[it->second].type() != index::v1::DIRECTORY) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar: a member's parent is not a directory: ", path.substr(0, 256)));
    }
    return it->second;
  }
  auto [parent_path, name] = SplitParent(path);
  CLIP_ASSIGN_OR_RETURN(uint32_t parent, EnsureDirectory(parent_path));
  Entry dir;
  dir.set_name(std::string(name));
  dir.set_parent(parent);
  dir.set_type(index::v1::DIRECTORY);
  dir.set_mode(0755);
  dir.set_implicit(true);
  auto id = static_cast<uint32_t>(entries_.size());
  entries_.push_back(std::move(dir));
  removed_.push_back(false);
  by_path_[std::string(path)] = id;
  return id;
}

void EntryTable::RemoveSubtree(uint32_t id, const std::string& path) {
  removed_[id] = true;
  by_path_.erase(path);
  if (entries_[id].type() != index::v1::DIRECTORY) return;
  std::string prefix = path.empty() ? "" : path + "/";
  for (auto it = by_path_.begin(); it != by_path_.end();) {
    if (!it->first.empty() && absl::StartsWith(it->first, prefix)) {
      removed_[it->second] = true;
      by_path_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::Status EntryTable::Add(const TarMember& m) {
  CLIP_ASSIGN_OR_RETURN(std::string path, NormalizeTarPath(m.path));
  auto [parent_path, name] = SplitParent(path);

  if (path.empty()) {  // "./" or "/": the root itself.
    if (m.type != TarType::kDirectory) {
      return absl::InvalidArgumentError("tar: the layer root is not a directory");
    }
    CopyMetadata(m, &entries_[0]);
    entries_[0].set_implicit(false);
    return absl::OkStatus();
  }

  CLIP_ASSIGN_OR_RETURN(uint32_t parent, EnsureDirectory(parent_path));
  if (name == kOpaqueMarker) {
    entries_[parent].set_opaque(true);
    return absl::OkStatus();
  }

  Entry e;
  e.set_parent(parent);
  e.set_type(TypeOf(m.type));
  CopyMetadata(m, &e);
  std::string key = path;
  if (absl::StartsWith(name, kWhiteoutPrefix)) {
    absl::string_view plain = name.substr(kWhiteoutPrefix.size());
    if (plain.empty()) return absl::InvalidArgumentError("tar: whiteout without a name");
    e.set_type(index::v1::WHITEOUT);
    e.set_name(std::string(plain));
    key = parent_path.empty() ? std::string(plain) : absl::StrCat(parent_path, "/", plain);
  } else {
    e.set_name(std::string(name));
  }

  switch (m.type) {
    case TarType::kRegular:
      e.set_size(m.size);
      e.set_data_offset(m.data_offset);
      break;
    case TarType::kSymlink:
      e.set_link_target(m.linkname);
      break;
    case TarType::kHardlink: {
      if (e.type() == index::v1::WHITEOUT) break;
      CLIP_ASSIGN_OR_RETURN(std::string target, NormalizeTarPath(m.linkname));
      auto it = by_path_.find(target);
      if (it == by_path_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tar: hardlink to a missing member: ", target.substr(0, 256)));
      }
      uint32_t target_id = it->second;
      const Entry& t = entries_[target_id];
      if (t.type() == index::v1::HARDLINK) target_id = t.link_entry();
      const Entry& final_target = entries_[target_id];
      if (final_target.type() == index::v1::DIRECTORY ||
          final_target.type() == index::v1::WHITEOUT) {
        return absl::InvalidArgumentError(
            absl::StrCat("tar: hardlink to a directory or whiteout: ", target.substr(0, 256)));
      }
      if (target == key) return absl::OkStatus();  // A link to itself changes nothing.
      e.set_link_target(target);
      e.set_link_entry(target_id);
      break;
    }
    case TarType::kCharDevice:
    case TarType::kBlockDevice:
      e.set_dev_major(m.dev_major);
      e.set_dev_minor(m.dev_minor);
      break;
    case TarType::kDirectory:
    case TarType::kFifo:
      break;
  }

  auto existing = by_path_.find(key);
  if (existing != by_path_.end()) {
    uint32_t old = existing->second;
    if (entries_[old].type() == index::v1::DIRECTORY && e.type() == index::v1::DIRECTORY) {
      // A directory declared again keeps its children and takes the new metadata.
      bool opaque = entries_[old].opaque();
      e.set_name(entries_[old].name());
      entries_[old] = std::move(e);
      entries_[old].set_opaque(opaque);
      return absl::OkStatus();
    }
    RemoveSubtree(old, key);
  }
  auto id = static_cast<uint32_t>(entries_.size());
  entries_.push_back(std::move(e));
  removed_.push_back(false);
  by_path_[key] = id;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Entry>> EntryTable::Finish() && {
  // A hardlink whose target was later replaced keeps the old data: the first such
  // link takes over the removed target's identity, later ones point to it.
  absl::flat_hash_map<uint32_t, uint32_t> new_owner;
  for (uint32_t id = 0; id < entries_.size(); ++id) {
    Entry& e = entries_[id];
    if (removed_[id] || e.type() != index::v1::HARDLINK || !removed_[e.link_entry()]) continue;
    auto it = new_owner.find(e.link_entry());
    if (it != new_owner.end()) {
      e.set_link_entry(it->second);
      continue;
    }
    new_owner[e.link_entry()] = id;
    Entry owner = entries_[e.link_entry()];
    owner.set_name(e.name());
    owner.set_parent(e.parent());
    e = std::move(owner);
  }

  std::vector<uint32_t> renumber(entries_.size(), UINT32_MAX);
  std::vector<Entry> out;
  out.reserve(entries_.size());
  for (uint32_t id = 0; id < entries_.size(); ++id) {
    // Parents precede children, so a removed ancestor is already known here.
    if (removed_[id] || (id != 0 && renumber[entries_[id].parent()] == UINT32_MAX)) continue;
    renumber[id] = static_cast<uint32_t>(out.size());
    out.push_back(std::move(entries_[id]));
  }
  for (uint32_t i = 1; i < out.size(); ++i) {
    out[i].set_parent(renumber[out[i].parent()]);
    if (out[i].type() == index::v1::HARDLINK) {
      uint32_t target = renumber[out[i].link_entry()];
      if (target == UINT32_MAX || target >= i) {
        return absl::InternalError("entry table: hardlink target lost");  // Impossible.
      }
      out[i].set_link_entry(target);
    }
  }
  return out;
}

}  // namespace clip
