#include "common/remove_tree.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace clip {

namespace {
int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}
}  // namespace

absl::Status RemoveTree(const std::string& path) {
  if (nftw(path.c_str(), RemoveEntry, 64, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, absl::StrCat("remove ", path));
  }
  return absl::OkStatus();
}

}  // namespace clip
