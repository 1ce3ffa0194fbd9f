#include "index/index_format.h"

#include <google/protobuf/util/message_differencer.h>
#include <zlib.h>

#include <cstring>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/coding.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "index/gzip_checkpoint.h"

namespace clip {
namespace {

using index::v1::LayerIndex;

constexpr uint32_t kFlagDeflatedPayload = 1;

absl::StatusOr<std::string> Inflate(absl::string_view in, uint64_t size) {
  std::string out(size, '\0');
  z_stream s{};
  if (inflateInit2(&s, -15) != Z_OK) return absl::InternalError("inflateInit2 failed");
  absl::Cleanup end = [&s] { inflateEnd(&s); };
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  int ret = inflate(&s, Z_FINISH);
  if (ret != Z_STREAM_END || s.total_out != size || s.avail_in != 0) {
    return absl::DataLossError("index: corrupt payload compression");
  }
  return out;
}

absl::Status Invalid(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("index: ", what));
}

}  // namespace

std::string EncodeIndex(const LayerIndex& index) {
  std::string payload;
  index.SerializeToString(&payload);
  std::string compressed = RawDeflate(payload, 6);
  std::string out(kIndexMagic, sizeof(kIndexMagic));
  PutFixed32(&out, kIndexFormatVersion);
  PutFixed32(&out, kFlagDeflatedPayload);
  PutFixed64(&out, compressed.size());
  PutFixed64(&out, payload.size());
  out += compressed;
  Digest sum = Digest::Of(out);
  out.append(reinterpret_cast<const char*>(sum.bytes().data()), Digest::kSize);
  return out;
}

absl::StatusOr<LayerIndex> DecodeIndex(absl::string_view bytes) {
  if (bytes.size() < kIndexHeaderSize + kIndexTrailerSize) return Invalid("file too short");
  if (std::memcmp(bytes.data(), kIndexMagic, sizeof(kIndexMagic)) != 0) {
    return Invalid("bad magic (not a clip index)");
  }
  uint32_t version = DecodeFixed32(bytes.data() + 8);
  if (version < kOldestReadableIndexVersion || version > kIndexFormatVersion) {
    return absl::UnimplementedError(absl::StrCat(
        "index: format version ", version, " is not supported (this build reads versions ",
        kOldestReadableIndexVersion, " to ", kIndexFormatVersion,
        "); re-index the layer with this build's `clipctl index`"));
  }
  uint32_t flags = DecodeFixed32(bytes.data() + 12);
  uint64_t stored = DecodeFixed64(bytes.data() + 16);
  uint64_t payload_size = DecodeFixed64(bytes.data() + 24);
  if ((flags & ~kFlagDeflatedPayload) != 0) return Invalid("unknown flags");
  if (stored != bytes.size() - kIndexHeaderSize - kIndexTrailerSize) {
    return Invalid("payload length does not match the file size (truncated?)");
  }
  if (payload_size > kMaxIndexPayload) return Invalid("payload too large");
  absl::string_view framed = bytes.substr(0, kIndexHeaderSize + stored);
  Digest sum = Digest::Of(framed);
  if (std::memcmp(sum.bytes().data(), bytes.data() + framed.size(), Digest::kSize) != 0) {
    return Invalid("checksum mismatch");
  }
  absl::string_view payload = bytes.substr(kIndexHeaderSize, stored);
  std::string inflated;
  if (flags & kFlagDeflatedPayload) {
    CLIP_ASSIGN_OR_RETURN(inflated, Inflate(payload, payload_size));
    payload = inflated;
  } else if (payload_size != stored) {
    return Invalid("payload size mismatch");
  }
  LayerIndex index;
  if (!index.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Invalid("payload does not parse");
  }
  CLIP_RETURN_IF_ERROR(ValidateIndex(index));
  return index;
}

absl::StatusOr<std::string> EncodeCheckedIndex(const LayerIndex& index) {
  std::string bytes = EncodeIndex(index);
  absl::StatusOr<LayerIndex> back = DecodeIndex(bytes);
  if (!back.ok()) {
    return absl::DataLossError(absl::StrCat("index does not read back: ", back.status().message()));
  }
  google::protobuf::util::MessageDifferencer differ;
  std::string difference;
  differ.ReportDifferencesToString(&difference);
  if (!differ.Compare(index, *back)) {
    return absl::DataLossError(absl::StrCat("index reads back different from what was built: ",
                                            difference.substr(0, 512)));
  }
  return bytes;
}

absl::Status ValidateIndex(const LayerIndex& index) {
  using index::v1::Entry;
  if (index.compression() != index::v1::GZIP && index.compression() != index::v1::NONE) {
    return Invalid("unknown compression");
  }
  if (!Digest::Parse(index.layer_digest()).ok()) return Invalid("bad layer digest");
  if (!Digest::Parse(index.diff_id()).ok()) return Invalid("bad diff id");
  const uint64_t usize = index.uncompressed_size();
  const uint64_t csize = index.compressed_size();
  if (index.compression() == index::v1::NONE && usize != csize) {
    return Invalid("uncompressed layer with differing sizes");
  }

  // Entries: a tree rooted at 0, parents first, unique names per directory.
  const auto& entries = index.entries();
  if (entries.empty() || entries[0].type() != index::v1::DIRECTORY || !entries[0].name().empty()) {
    return Invalid("entry 0 is not the root directory");
  }
  absl::flat_hash_set<std::pair<uint32_t, absl::string_view>> names;
  names.reserve(entries.size());
  for (int i = 1; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.parent() >= static_cast<uint32_t>(i) ||
        entries[e.parent()].type() != index::v1::DIRECTORY) {
      return Invalid(absl::StrCat("entry ", i, ": bad parent"));
    }
    const std::string& n = e.name();
    if (n.empty() || n == "." || n == ".." || n.size() > 255 || n.find('/') != std::string::npos ||
        n.find('\0') != std::string::npos) {
      return Invalid(absl::StrCat("entry ", i, ": bad name"));
    }
    if (!names.insert({e.parent(), n}).second) {
      return Invalid(absl::StrCat("entry ", i, ": duplicate name in its directory"));
    }
    if (e.mode() > 07777 || e.mtime_nsec() >= 1000000000) {
      return Invalid(absl::StrCat("entry ", i, ": bad mode or time"));
    }
    switch (e.type()) {
      case index::v1::REGULAR:
        if (e.data_offset() > usize || e.size() > usize - e.data_offset()) {
          return Invalid(absl::StrCat("entry ", i, ": data beyond the layer"));
        }
        break;
      case index::v1::HARDLINK: {
        if (e.link_entry() >= static_cast<uint32_t>(i)) {
          return Invalid(absl::StrCat("entry ", i, ": bad hardlink"));
        }
        auto t = entries[e.link_entry()].type();
        if (t == index::v1::DIRECTORY || t == index::v1::HARDLINK || t == index::v1::WHITEOUT) {
          return Invalid(absl::StrCat("entry ", i, ": hardlink to a ", t));
        }
        break;
      }
      case index::v1::DIRECTORY:
      case index::v1::SYMLINK:
      case index::v1::CHAR_DEVICE:
      case index::v1::BLOCK_DEVICE:
      case index::v1::FIFO:
      case index::v1::WHITEOUT:
        break;
      default:
        return Invalid(absl::StrCat("entry ", i, ": unknown type"));
    }
  }

  // Checkpoints: start at 0, strictly increasing, within the layer, one digest each.
  const auto& cps = index.checkpoints();
  if (cps.empty() || cps[0].uncompressed_offset() != 0) {
    return Invalid("first checkpoint is not at offset 0");
  }
  for (int i = 0; i < cps.size(); ++i) {
    const auto& cp = cps[i];
    if (cp.span_sha256().size() != Digest::kSize) return Invalid("bad span digest");
    if (cp.bits() > 7 || cp.compressed_offset() > csize || cp.uncompressed_offset() > usize ||
        (cp.bits() > 0 && cp.compressed_offset() == 0)) {
      return Invalid(absl::StrCat("checkpoint ", i, ": out of range"));
    }
    if (i > 0 && (cp.uncompressed_offset() <= cps[i - 1].uncompressed_offset() ||
                  cp.compressed_offset() < cps[i - 1].compressed_offset())) {
      return Invalid(absl::StrCat("checkpoint ", i, ": not in order"));
    }
    if (index.compression() == index::v1::NONE &&
        (cp.bits() != 0 || cp.compressed_offset() != cp.uncompressed_offset() ||
         !cp.window().empty())) {
      return Invalid(absl::StrCat("checkpoint ", i, ": not a plain offset"));
    }
    if (cp.window().size() > 2 * kDeflateWindowSize) {
      return Invalid(absl::StrCat("checkpoint ", i, ": window too large"));
    }
  }
  return absl::OkStatus();
}

}  // namespace clip
