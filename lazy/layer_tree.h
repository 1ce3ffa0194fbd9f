// LayerTree: a layer written out as a plain directory tree, what overlayfs's own unpack of
// the layer would be (containerd's overlayfs snapshotter applying its tar), so overlayfs
// can use it as a lowerdir with no FUSE in the way once the layer's data is local.
//
// The tree is written from the layer's LayerFs, the same view the FUSE mount serves:
// entry types, modes (setuid and all), owners, nanosecond mtimes, xattrs (user.*,
// trusted.*, security.capability), device nodes, fifos, hardlinks (one inode per file,
// however many names), names and link targets that are not UTF-8, and overlay's forms of
// the layer's whiteouts (character device 0/0) and opaque directories
// (`trusted.overlay.opaque` = "y"). File data is read through LayerFs, so every byte is
// one the span verification passed.
//
// Writing is atomic: everything goes to `<dir>.tmp-<pid>-<n>` beside `dir`, is flushed to
// disk (syncfs), and is renamed onto `dir` last. A crash or an error leaves at most a
// `*.tmp-*` directory, which nothing ever uses; RemoveUnfinishedTrees clears those.
//
//   CLIP_RETURN_IF_ERROR(RemoveUnfinishedTrees(root + "/trees"));  // at start
//   CLIP_RETURN_IF_ERROR(WriteLayerTree(fs, root + "/trees/" + hex));
//
// Errors: kAlreadyExists when `dir` exists; kResourceExhausted when the disk is full
// (ENOSPC, EDQUOT); the errno of any other failed call, or LayerFs's read errors; in
// every case with the path, and nothing left at `dir`.
//
// Thread safety: free functions; concurrent writes of different trees are fine, of the
// same `dir` the first rename wins and the other gets kAlreadyExists.
#ifndef CLIP_LAZY_LAYER_TREE_H_
#define CLIP_LAZY_LAYER_TREE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "fs/layer_fs.h"

namespace clip {

struct LayerTreeOptions {
  // Called with each entry's path (relative, "" for the root) before it is written; an
  // error stops the write there (tests: a crash or a failure at any point).
  std::function<absl::Status(const std::string& path)> before_entry;
};

absl::Status WriteLayerTree(const LayerFs& fs, const std::string& dir,
                            const LayerTreeOptions& options = {});

// Removes the `*.tmp-*` directories of interrupted writes in `parent` (missing: fine).
absl::Status RemoveUnfinishedTrees(const std::string& parent);

}  // namespace clip

#endif  // CLIP_LAZY_LAYER_TREE_H_
