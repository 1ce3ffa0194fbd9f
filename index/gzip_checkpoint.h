// Gzip checkpoints: starting inflation in the middle of a gzip stream (the zran
// technique from zlib's examples/zran.c, reimplemented).
//
// A deflate stream can only be entered at a block boundary, which may fall inside a
// byte, and only with the 32 KiB of output before it (back-references reach that far).
// A checkpoint records both: the compressed byte offset and bit count, the
// uncompressed offset, and that window (kept raw-deflate compressed in the index).
//
// InflateFromCheckpoint produces exactly `out_size` bytes starting at a checkpoint,
// from the compressed bytes that follow it, crossing gzip member boundaries
// (multi-member files from pigz and some builders) as needed.
//
// Thread safety: pure functions, safe to call concurrently.
#ifndef CLIP_INDEX_GZIP_CHECKPOINT_H_
#define CLIP_INDEX_GZIP_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace clip {

inline constexpr size_t kDeflateWindowSize = 32 * 1024;

// Raw deflate (no zlib/gzip wrapper) of `data` at `level` (0-9).
std::string RawDeflate(absl::string_view data, int level);

// Raw-deflate compression of a checkpoint window (and its inverse, which checks the
// result is at most kDeflateWindowSize bytes: kDataLoss otherwise).
std::string CompressWindow(absl::string_view window);
absl::StatusOr<std::string> DecompressWindow(absl::string_view compressed);

// Inflates exactly out.size() bytes starting at a checkpoint into `out`. `input`
// holds the compressed bytes from the checkpoint on: when `bits` > 0 its first byte is
// the partial byte (the one before the checkpoint's compressed offset) whose low
// `bits` bits are still to be read. `window` is the decompressed window. `progress`,
// if set, is called with the number of bytes of `out` final so far, as inflation
// advances (so a consumer can hash them while the rest inflates). kDataLoss when the
// input is corrupt or ends early.
absl::Status InflateFromCheckpoint(absl::string_view input, uint32_t bits, absl::string_view window,
                                   absl::Span<char> out,
                                   const std::function<void(size_t)>& progress = nullptr);

}  // namespace clip

#endif  // CLIP_INDEX_GZIP_CHECKPOINT_H_
