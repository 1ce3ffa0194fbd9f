#include "snapshotter/image_fs_link.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace clip {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, mode_t mode) {
  std::vector<std::string> missing;
  std::string p = path;
  struct stat st;
  while (!p.empty() && p != "/" && stat(p.c_str(), &st) != 0) {
    if (errno != ENOENT) return Errno("stat", p);
    missing.push_back(p);
    p = p.substr(0, p.find_last_of('/'));
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (mkdir(it->c_str(), mode) != 0 && errno != EEXIST) return Errno("mkdir", *it);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EnsureImageFsLink(const std::string& containerd_root,
                                              const std::string& root) {
  if (containerd_root.empty() || containerd_root[0] != '/' || root.empty() || root[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("image filesystem link: paths must be absolute (containerd root \"",
                     containerd_root, "\", clip root \"", root, "\")"));
  }
  const std::string path = absl::StrCat(containerd_root, "/", kImageFsDirName);
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return path;  // a real directory: it stats fine
    if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t n = readlink(path.c_str(), target.data(), target.size());
      if (n >= 0 && std::string(target.data(), static_cast<size_t>(n)) == root) return path;
    }
    if (unlink(path.c_str()) != 0) return Errno("unlink", path);
  } else if (errno != ENOENT) {
    return Errno("lstat", path);
  }
  if (absl::Status made = MakeDirs(containerd_root, 0711); !made.ok()) return made;
  if (symlink(root.c_str(), path.c_str()) != 0) return Errno("symlink", path);
  return path;
}

}  // namespace clip
