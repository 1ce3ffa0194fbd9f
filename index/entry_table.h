// EntryTable: turns the members of a layer's tar stream into the clip index's entry
// table, the tree a layer filesystem serves.
//
// It applies what extracting the layer onto an empty directory would do (as
// containerd's applier does): paths are normalised (`./a//b` -> `a/b`, leading `/`
// removed) and a `..` component rejects the layer; missing parent directories are
// created (0755, root); a later member with the same path replaces the earlier one
// (a directory redeclared as a directory keeps its children; anything else replaces
// the whole subtree); hardlinks are resolved to the entry they name. Overlay
// whiteouts `.wh.<name>` become WHITEOUT entries and `.wh..wh..opq` marks its
// directory opaque, for fs/ to present as overlayfs expects from a lower layer.
//
//   EntryTable table;
//   CLIP_RETURN_IF_ERROR(table.Add(member));  // for every member, in order
//   CLIP_ASSIGN_OR_RETURN(std::vector<index::v1::Entry> entries, std::move(table).Finish());
//
// Errors: kInvalidArgument for hostile or impossible members (`..`, a name over
// NAME_MAX, a hardlink to nothing or to a directory, a child of a non-directory).
//
// Thread safety: not safe for concurrent use.
#ifndef CLIP_INDEX_ENTRY_TABLE_H_
#define CLIP_INDEX_ENTRY_TABLE_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "clip/index/v1/index.pb.h"
#include "index/tar_parser.h"

namespace clip {

// Normalises a tar member name to a relative path without `.`/empty components
// ("" is the root). kInvalidArgument for `..` components, NUL bytes, a component
// longer than 255 bytes or a path longer than 4095 bytes.
absl::StatusOr<std::string> NormalizeTarPath(absl::string_view raw);

class EntryTable {
 public:
  static constexpr absl::string_view kWhiteoutPrefix = ".wh.";
  static constexpr absl::string_view kOpaqueMarker = ".wh..wh..opq";

  EntryTable();

  absl::Status Add(const TarMember& member);

  // The entries: id 0 is the root, parents precede children, removed entries are
  // dropped and ids renumbered.
  absl::StatusOr<std::vector<index::v1::Entry>> Finish() &&;

 private:
  // Id of the directory `path`, creating implicit directories as needed.
  absl::StatusOr<uint32_t> EnsureDirectory(absl::string_view path);
  void RemoveSubtree(uint32_t id, const std::string& path);

  std::vector<index::v1::Entry> entries_;
  std::vector<bool> removed_;
  absl::flat_hash_map<std::string, uint32_t> by_path_;
};

}  // namespace clip

#endif  // CLIP_INDEX_ENTRY_TABLE_H_
