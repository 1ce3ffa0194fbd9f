// RemoveTree: `rm -rf` of one directory tree (what a snapshot, or an unfinished write,
// leaves), never following symlinks.
//
//   CLIP_RETURN_IF_ERROR(RemoveTree(root + "/snapshots/17"));
//
// Thread safety: a free function; concurrent removals of the same tree may report
// entries the other removed.
#ifndef CLIP_COMMON_REMOVE_TREE_H_
#define CLIP_COMMON_REMOVE_TREE_H_

#include <string>

#include "absl/status/status.h"

namespace clip {

// Removes `path` and everything under it (missing: fine).
absl::Status RemoveTree(const std::string& path);

}  // namespace clip

#endif  // CLIP_COMMON_REMOVE_TREE_H_
