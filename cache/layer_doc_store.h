// LayerDocStore: a local directory of per-layer documents, one file per layer named by
// the layer digest's hex: the daemon's index store (`<root>/indexes`) and access-profile
// store (`<root>/profiles`), and what `clipctl index --store/--profiles` and `clipctl
// record` read and write. Files are written atomically (file_io.h), so a reader sees a
// whole document or none; the store never parses them (callers verify what they read).
//
//   LayerDocStore indexes(root + "/indexes");
//   CLIP_RETURN_IF_ERROR(indexes.Create());
//   CLIP_ASSIGN_OR_RETURN(std::optional<std::string> bytes, indexes.Get(layer));
//
// Thread safety: no mutable state; safe for concurrent use, also by several processes.
#ifndef CLIP_CACHE_LAYER_DOC_STORE_H_
#define CLIP_CACHE_LAYER_DOC_STORE_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/digest.h"

namespace clip {

class LayerDocStore {
 public:
  explicit LayerDocStore(std::string dir) : dir_(std::move(dir)) {}

  // Makes the directory (with `mode`) if it is missing.
  absl::Status Create(mode_t mode = 0700) const;

  const std::string& dir() const { return dir_; }
  std::string PathOf(const Digest& layer) const;

  // nullopt when the store has no document for `layer`; other read errors as they are.
  absl::StatusOr<std::optional<std::string>> Get(const Digest& layer) const;
  absl::Status Put(const Digest& layer, const std::string& bytes) const;
  // Size of the stored document, nullopt when there is none.
  std::optional<uint64_t> SizeOf(const Digest& layer) const;
  bool Contains(const Digest& layer) const { return SizeOf(layer).has_value(); }
  // True when a document was there.
  bool Remove(const Digest& layer) const;

 private:
  std::string dir_;
};

}  // namespace clip

#endif  // CLIP_CACHE_LAYER_DOC_STORE_H_
