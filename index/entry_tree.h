// EntryTree: directory structure over an index's entry table, built once when an
// index is loaded, so that lookups and listings never scan the whole layer.
//
//   EntryTree tree(index);
//   std::optional<uint32_t> id = tree.Resolve("usr/bin/python3");
//   for (uint32_t child : tree.Children(0)) ...
//
// Children are sorted by name (Lookup is a binary search). Whiteouts are ordinary
// children here; presenting them is fs/'s business.
//
// Thread safety: immutable after construction, safe to share.
#ifndef CLIP_INDEX_ENTRY_TREE_H_
#define CLIP_INDEX_ENTRY_TREE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "clip/index/v1/index.pb.h"

namespace clip {

class EntryTree {
 public:
  // `index` must be valid (ValidateIndex) and outlive the tree.
  explicit EntryTree(const index::v1::LayerIndex& index);

  absl::Span<const uint32_t> Children(uint32_t dir) const;
  std::optional<uint32_t> Lookup(uint32_t dir, absl::string_view name) const;
  // Resolves a relative or absolute path of names (no symlinks followed).
  std::optional<uint32_t> Resolve(absl::string_view path) const;
  // "a/b/c" for an entry; "" for the root.
  std::string Path(uint32_t id) const;

 private:
  const index::v1::LayerIndex& index_;
  // Children of every directory, concatenated; directory id's are
  // children_[start_[id]..start_[id + 1]).
  std::vector<uint32_t> children_;
  std::vector<uint32_t> start_;
};

}  // namespace clip

#endif  // CLIP_INDEX_ENTRY_TREE_H_
