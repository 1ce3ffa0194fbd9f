#include "common/blob_reader.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace clip {

absl::Status ReadExactly(const BlobReader& blob, uint64_t offset, absl::Span<char> dst) {
  CLIP_ASSIGN_OR_RETURN(size_t n, blob.ReadAt(offset, dst));
  if (n != dst.size()) {
    return absl::OutOfRangeError(absl::StrCat("read of ", dst.size(), " bytes at offset ", offset,
                                              " ends after ", n, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace clip
