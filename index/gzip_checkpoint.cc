#include "index/gzip_checkpoint.h"

#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <cstdlib>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace clip {
namespace {

constexpr int kRawDeflate = -15;
constexpr int kGzipOnly = 15 + 16;
constexpr size_t kGzipTrailerSize = 8;  // CRC32 + ISIZE

Bytef* In(absl::string_view s) { return reinterpret_cast<Bytef*>(const_cast<char*>(s.data())); }

}  // namespace

std::string RawDeflate(absl::string_view data, int level) {
  z_stream s{};
  if (deflateInit2(&s, level, Z_DEFLATED, kRawDeflate, 9, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  std::string out(deflateBound(&s, data.size()), '\0');
  s.next_in = In(data);
  s.avail_in = static_cast<uInt>(data.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  // deflateBound guarantees Z_FINISH completes in one call.
  if (deflate(&s, Z_FINISH) != Z_STREAM_END) abort();
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

// Level 6: level 9 costs several times more for ~1% smaller windows.
std::string CompressWindow(absl::string_view window) { return RawDeflate(window, 6); }

absl::StatusOr<std::string> DecompressWindow(absl::string_view compressed) {
  z_stream s{};
  if (inflateInit2(&s, kRawDeflate) != Z_OK) return absl::InternalError("inflateInit2 failed");
  absl::Cleanup end = [&s] { inflateEnd(&s); };
  std::string out(kDeflateWindowSize + 1, '\0');  // One spare byte detects oversize.
  s.next_in = In(compressed);
  s.avail_in = static_cast<uInt>(compressed.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  int ret = inflate(&s, Z_FINISH);
  if (ret != Z_STREAM_END || s.total_out > kDeflateWindowSize) {
    return absl::DataLossError("index: corrupt checkpoint window");
  }
  out.resize(s.total_out);
  return out;
}

namespace {

enum class FastResult { kDone, kFallback };

// ISA-L's inflate (2-3x zlib's speed). It handles the common case, a span inside one
// gzip member; a span that crosses into the next member is left to zlib, which can
// parse the gzip header in between.
// Output is produced in steps of this size, reporting progress after each.
constexpr size_t kStep = 256 << 10;

absl::StatusOr<FastResult> InflateWithIsal(absl::string_view input, uint32_t bits,
                                           absl::string_view window, absl::Span<char> out,
                                           const std::function<void(size_t)>& progress) {
  auto state = std::make_unique<inflate_state>();
  isal_inflate_init(state.get());
  state->crc_flag = ISAL_DEFLATE;
  if (!window.empty() &&
      isal_inflate_set_dict(state.get(),
                            reinterpret_cast<uint8_t*>(const_cast<char*>(window.data())),
                            static_cast<uint32_t>(window.size())) != COMP_OK) {
    return FastResult::kFallback;
  }
  if (bits > 0) {
    state->read_in = static_cast<unsigned char>(input[0]) >> (8 - bits);
    state->read_in_length = static_cast<int32_t>(bits);
    input.remove_prefix(1);
  }
  state->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(input.data()));
  state->avail_in = static_cast<uint32_t>(input.size());
  size_t produced = 0;
  state->next_out = reinterpret_cast<uint8_t*>(out.data());
  while (produced < out.size()) {
    state->avail_out = static_cast<uint32_t>(std::min(kStep, out.size() - produced));
    uint32_t before = state->avail_out;
    int ret = isal_inflate(state.get());
    if (ret != ISAL_DECOMP_OK) {
      return absl::DataLossError(absl::StrCat("gzip: corrupt deflate data (isal error ", ret, ")"));
    }
    produced += before - state->avail_out;
    if (progress) progress(produced);
    if (state->avail_out == 0) continue;
    if (state->block_state == ISAL_BLOCK_FINISH) return FastResult::kFallback;  // Member end.
    return absl::DataLossError(
        absl::StrCat("gzip: input ends after ", produced, " of ", out.size(), " span bytes"));
  }
  return FastResult::kDone;
}

}  // namespace

absl::Status InflateFromCheckpoint(absl::string_view input, uint32_t bits, absl::string_view window,
                                   absl::Span<char> out,
                                   const std::function<void(size_t)>& progress) {
  if (bits > 7) return absl::DataLossError("index: checkpoint bit offset > 7");
  if (window.size() > kDeflateWindowSize) return absl::DataLossError("index: window too large");
  const size_t out_size = out.size();
  if (out_size == 0) return absl::OkStatus();
  if (bits > 0 && input.empty()) return absl::DataLossError("gzip: no input at checkpoint");
  absl::StatusOr<FastResult> fast = InflateWithIsal(input, bits, window, out, progress);
  if (!fast.ok()) return fast.status();
  if (*fast == FastResult::kDone) return absl::OkStatus();
  z_stream s{};
  if (inflateInit2(&s, kRawDeflate) != Z_OK) return absl::InternalError("inflateInit2 failed");
  absl::Cleanup end = [&s] { inflateEnd(&s); };
  if (bits > 0) {
    if (input.empty()) return absl::DataLossError("gzip: no input at checkpoint");
    int partial = static_cast<unsigned char>(input[0]) >> (8 - bits);
    if (inflatePrime(&s, static_cast<int>(bits), partial) != Z_OK) {
      return absl::InternalError("inflatePrime failed");
    }
    input.remove_prefix(1);
  }
  if (!window.empty() && inflateSetDictionary(&s, reinterpret_cast<const Bytef*>(window.data()),
                                              static_cast<uInt>(window.size())) != Z_OK) {
    return absl::InternalError("inflateSetDictionary failed");
  }
  s.next_in = In(input);
  s.avail_in = static_cast<uInt>(input.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  while (s.avail_out > 0) {
    int ret = inflate(&s, Z_NO_FLUSH);
    if (progress) progress(out_size - s.avail_out);
    if (ret == Z_STREAM_END) {
      if (s.avail_out == 0) break;
      // End of a gzip member inside the span: skip its trailer and enter the next
      // member (multi-member gzip), header included.
      if (s.avail_in < kGzipTrailerSize) {
        return absl::DataLossError("gzip: stream ends inside a span (truncated layer?)");
      }
      Bytef* next_in = s.next_in + kGzipTrailerSize;
      uInt avail_in = s.avail_in - static_cast<uInt>(kGzipTrailerSize);
      if (inflateReset2(&s, kGzipOnly) != Z_OK) return absl::InternalError("inflateReset2");
      s.next_in = next_in;
      s.avail_in = avail_in;
      continue;
    }
    if (ret == Z_BUF_ERROR || (ret == Z_OK && s.avail_in == 0 && s.avail_out > 0)) {
      return absl::DataLossError(absl::StrCat("gzip: input ends after ", out_size - s.avail_out,
                                              " of ", out_size, " span bytes"));
    }
    if (ret != Z_OK) {
      return absl::DataLossError(
          absl::StrCat("gzip: corrupt deflate data: ", s.msg ? s.msg : "inflate error"));
    }
  }
  return absl::OkStatus();
}

}  // namespace clip
