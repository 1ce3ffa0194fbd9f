// BuildLayerIndex: builds the clip index of one layer in one streaming pass.
//
// The compressed layer is read sequentially through a BlobReader, inflated with
// zlib stopping at every deflate block boundary (Z_BLOCK), parsed as tar while it
// streams, and hashed three ways: the blob (layer digest), the whole tar (DiffID)
// and every span between checkpoints (the span digests caches key on).
//
// Checkpoint placement, fixed by the format so that the same layer always gives the
// same index: one at offset 0; then the first block boundary after every
// `checkpoint_interval` bytes of output since the previous checkpoint; and the last
// boundary at or before the data of every regular file larger than
// `large_file_threshold`, so a read of a large file inflates from near its first
// byte. Placing that one means looking back one boundary: output since the last
// boundary is kept unhashed in the work buffer until the next boundary decides.
// Optionally (`small_file_interval` > 0) also the first boundary after every
// `small_file_interval` bytes of output outside large files since the previous
// checkpoint, while the index stays within `max_index_ratio` of the layer's
// uncompressed bytes so far: regions of small files get short spans, so a start
// that reads a few hundred small files fetches less around each one. The budget is
// spent as the stream goes (checkpoint windows at their compressed size, entries at
// kEntryCostEstimate bytes each), so it is spread over the layer, not used up by its
// first megabytes.
// Uncompressed tar layers get checkpoints at exactly those offsets (every byte is a
// boundary) and no windows. zstd layers are kUnimplemented.
//
//   CLIP_ASSIGN_OR_RETURN(auto blob, FileBlobReader::Open(path));
//   CLIP_ASSIGN_OR_RETURN(index::v1::LayerIndex index, BuildLayerIndex(*blob));
//
// Errors: kDataLoss for corrupt or truncated gzip/tar, plus the errors of TarParser
// and EntryTable, plus the blob's own read errors.
//
// Thread safety: BuildLayerIndex may run concurrently on different blobs.
#ifndef CLIP_INDEX_LAYER_INDEXER_H_
#define CLIP_INDEX_LAYER_INDEXER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "clip/index/v1/index.pb.h"
#include "common/blob_reader.h"

namespace clip {

struct IndexOptions {
  uint64_t checkpoint_interval = 2 << 20;
  uint64_t large_file_threshold = 512 << 10;
  // 0: off. Otherwise at most checkpoint_interval.
  uint64_t small_file_interval = 0;
  double max_index_ratio = 0.01;
};

// What one entry is assumed to add to an encoded index, for the small-file budget
// (measured on Debian layers: about 12 bytes, deflated with the rest).
inline constexpr uint64_t kEntryCostEstimate = 16;
// What a checkpoint adds besides its window: offsets, bits and the span digest.
inline constexpr uint64_t kCheckpointCostEstimate = 48;

absl::StatusOr<index::v1::LayerIndex> BuildLayerIndex(const BlobReader& layer,
                                                      const IndexOptions& options = {});

}  // namespace clip

#endif  // CLIP_INDEX_LAYER_INDEXER_H_
