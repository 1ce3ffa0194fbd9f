#include "index/gzip_checkpoint.h"

#include <zlib.h>

#include <cstdlib>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace clip {
namespace {

constexpr int kRawDeflate = -15;
constexpr int kGzipOnly = 15 + 16;
constexpr size_t kGzipTrailerSize = 8;  // CRC32 + ISIZE

Bytef* In(absl::string_view s) {
  return reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
}

}  // namespace

std::string CompressWindow(absl::string_view window) {
  z_stream s{};
  if (deflateInit2(&s, 9, Z_DEFLATED, kRawDeflate, 9, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  std::string out(deflateBound(&s, window.size()), '\0');
  s.next_in = In(window);
  s.avail_in = static_cast<uInt>(window.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  // deflateBound guarantees Z_FINISH completes in one call.
  if (deflate(&s, Z_FINISH) != Z_STREAM_END) abort();
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

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

absl::StatusOr<std::string> InflateFromCheckpoint(absl::string_view input, uint32_t bits,
                                                  absl::string_view window, size_t out_size) {
  if (bits > 7) return absl::DataLossError("index: checkpoint bit offset > 7");
  if (window.size() > kDeflateWindowSize) return absl::DataLossError("index: window too large");
  std::string out(out_size, '\0');
  if (out_size == 0) return out;
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
  if (!window.empty() &&
      inflateSetDictionary(&s, reinterpret_cast<const Bytef*>(window.data()),
                           static_cast<uInt>(window.size())) != Z_OK) {
    return absl::InternalError("inflateSetDictionary failed");
  }
  s.next_in = In(input);
  s.avail_in = static_cast<uInt>(input.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  while (s.avail_out > 0) {
    int ret = inflate(&s, Z_NO_FLUSH);
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
  return out;
}

}  // namespace clip
