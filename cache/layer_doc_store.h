// LayerDocStore: a local directory of per-layer documents, one file per layer named by
// the layer digest's hex: the daemon's index store (`<root>/indexes`) and access-profile
// store (`<root>/profiles`), and what `clipctl index --store/--profiles` and `clipctl
// record` read and write. Files are written atomically (file_io.h), so a reader sees a
// whole document or none; the store never parses them (callers verify what they read).
//
// Each document may carry a record of where it came from, beside it in `<hex>.origin`:
// one line `sha256:<the document's own digest> <origin>` (origins are the caller's
// words: "built", "bound", "fleet", ...). A document whose bytes no longer hash to its
// record was changed on disk, and callers refuse it (lazy/index_finder.h says
// which origins a node trusts). Put writes the document, then its record; a crash in
// between leaves a mismatch, which reads as changed (refused, fetched again).
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
#include "absl/strings/string_view.h"
#include "common/digest.h"

namespace clip {

// The origins clip records (lazy/index_trust.h says which a node believes).
inline constexpr char kOriginBuilt[] = "built";        // indexed here from a verified blob
inline constexpr char kOriginRecorded[] = "recorded";  // access profile recorded here
inline constexpr char kOriginBound[] = "bound";        // proven by an image's binding
inline constexpr char kOriginFleet[] = "fleet";        // another node's, via the remote cache
inline constexpr char kOriginReferrer[] = "referrer";  // an OCI referrer's

class LayerDocStore {
 public:
  explicit LayerDocStore(std::string dir) : dir_(std::move(dir)) {}

  // Makes the directory (with `mode`) if it is missing.
  absl::Status Create(mode_t mode = 0700) const;

  const std::string& dir() const { return dir_; }
  std::string PathOf(const Digest& layer) const;

  // nullopt when the store has no document for `layer`; other read errors as they are.
  absl::StatusOr<std::optional<std::string>> Get(const Digest& layer) const;
  // With `origin`, also records the document's digest and origin; without, drops any
  // record (a document without one has no known origin).
  absl::Status Put(const Digest& layer, const std::string& bytes,
                   absl::string_view origin = {}) const;
  struct Record {
    Digest digest;       // what the document hashed to when it was put
    std::string origin;  // as given to Put
  };
  // The document's record; nullopt when it has none (or it is unreadable).
  std::optional<Record> RecordOf(const Digest& layer) const;
  // Size of the stored document, nullopt when there is none.
  std::optional<uint64_t> SizeOf(const Digest& layer) const;
  bool Contains(const Digest& layer) const { return SizeOf(layer).has_value(); }
  // True when a document was there (its record goes too).
  bool Remove(const Digest& layer) const;

 private:
  std::string RecordPathOf(const Digest& layer) const;

  std::string dir_;
};

}  // namespace clip

#endif  // CLIP_CACHE_LAYER_DOC_STORE_H_
