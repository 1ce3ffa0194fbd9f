#include "cmd/index_commands.h"

#include <time.h>

#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_blob_reader.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "index/entry_tree.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "index/layer_reader.h"
#include "index/span_inflater.h"
#include "index/span_source.h"

namespace clip {
namespace {

using index::v1::Entry;
using index::v1::LayerIndex;

absl::StatusOr<LayerIndex> LoadIndex(const std::string& path) {
  CLIP_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  absl::StatusOr<LayerIndex> index = DecodeIndex(bytes);
  if (!index.ok()) {
    return WithContext(index.status(), path);
  }
  return index;
}

char TypeChar(const Entry& e) {
  switch (e.type()) {
    case index::v1::DIRECTORY:
      return 'd';
    case index::v1::SYMLINK:
      return 'l';
    case index::v1::HARDLINK:
      return 'h';
    case index::v1::CHAR_DEVICE:
      return 'c';
    case index::v1::BLOCK_DEVICE:
      return 'b';
    case index::v1::FIFO:
      return 'p';
    default:
      return '-';
  }
}

std::string ModeString(char type, uint32_t mode) {
  std::string s(10, '-');
  s[0] = type;
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (mode & (0400 >> i)) s[1 + i] = rwx[i];
  }
  if (mode & 04000) s[3] = (mode & 0100) ? 's' : 'S';
  if (mode & 02000) s[6] = (mode & 0010) ? 's' : 'S';
  if (mode & 01000) s[9] = (mode & 0001) ? 't' : 'T';
  return s;
}

// A name as `tar -tv` shows it (its default "escape" quoting in a UTF-8 locale): valid
// printable UTF-8 as is, a backslash doubled, C escapes for the usual control
// characters, every other byte (names are bytes, not always UTF-8) as \ooo.
std::string Quote(absl::string_view name) {
  std::string out;
  out.reserve(name.size());
  auto octal = [&out](unsigned char c) { absl::StrAppend(&out, absl::StrFormat("\\%03o", c)); };
  for (size_t i = 0; i < name.size();) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x80) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c >= 0x07 && c <= 0x0d) {
        out += '\\';
        out += "abtnvfr"[c - 0x07];
      } else if (c < 0x20 || c == 0x7f) {
        octal(c);
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: shortest form, no surrogates, at most U+10FFFF, not a C1 control.
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    uint32_t cp = len == 4 ? c & 0x07 : len == 3 ? c & 0x0f : c & 0x1f;
    bool valid = len > 0 && i + len <= name.size();
    for (size_t k = 1; valid && k < len; ++k) {
      auto cc = static_cast<unsigned char>(name[i + k]);
      valid = (cc & 0xc0) == 0x80;
      cp = cp << 6 | (cc & 0x3f);
    }
    valid = valid &&
            cp >= (len == 4   ? 0x10000u
                   : len == 3 ? 0x800u
                              : 0xa0u) &&
            cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    if (valid) {
      out.append(name.data() + i, len);
      i += len;
    } else {
      octal(c);
      ++i;
    }
  }
  return out;
}

std::string Owner(const Entry& e) {
  return absl::StrCat(e.uname().empty() ? absl::StrCat(e.uid()) : Quote(e.uname()), "/",
                      e.gname().empty() ? absl::StrCat(e.gid()) : Quote(e.gname()));
}

std::string Time(int64_t sec) {
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
  return buf;
}

void PrintLine(const std::string& mode, const std::string& owner, const std::string& size,
               const std::string& time, const std::string& name, std::ostream& out) {
  out << absl::StrFormat("%s %s %10s %s %s\n", mode, owner, size, time, name);
}

}  // namespace

absl::Status IndexBuildCommand(const std::string& layer_path, const std::string& index_path,
                               const IndexOptions& options, std::ostream& out) {
  CLIP_ASSIGN_OR_RETURN(auto blob, FileBlobReader::Open(layer_path));
  absl::StatusOr<LayerIndex> index = BuildLayerIndex(*blob, options);
  if (!index.ok()) {
    return WithContext(index.status(), layer_path);
  }
  absl::StatusOr<std::string> bytes = EncodeCheckedIndex(*index);
  if (!bytes.ok()) {
    return WithContext(bytes.status(), layer_path);
  }
  CLIP_RETURN_IF_ERROR(WriteFileAtomically(index_path, *bytes));
  out << absl::StrFormat(
      "%s: %d entries, %d checkpoints, index %d bytes (%.3f%% of %d)\n", index_path,
      index->entries_size(), index->checkpoints_size(), bytes->size(),
      index->uncompressed_size() ? 100.0 * bytes->size() / index->uncompressed_size() : 0.0,
      index->uncompressed_size());
  return absl::OkStatus();
}

absl::Status IndexInspectCommand(const std::string& index_path, bool spans, std::ostream& out) {
  CLIP_ASSIGN_OR_RETURN(LayerIndex index, LoadIndex(index_path));
  if (spans) {
    // One line per span: number, uncompressed offset and length, compressed offset and
    // length (what a fetch of it reads), stored window bytes.
    for (int i = 0; i < index.checkpoints_size(); ++i) {
      const auto& cp = index.checkpoints(i);
      bool last = i + 1 == index.checkpoints_size();
      uint64_t uend =
          last ? index.uncompressed_size() : index.checkpoints(i + 1).uncompressed_offset();
      uint64_t cend = last ? index.compressed_size() : index.checkpoints(i + 1).compressed_offset();
      uint64_t cstart = cp.compressed_offset() - (cp.bits() ? 1 : 0);
      out << absl::StrFormat("span %d %d %d %d %d %d\n", i, cp.uncompressed_offset(),
                             uend - cp.uncompressed_offset(), cstart, cend - cstart,
                             cp.window().size());
    }
    return absl::OkStatus();
  }
  EntryTree tree(index);
  for (int i = 0; i < index.entries_size(); ++i) {
    const Entry& e = index.entries(i);
    std::string path = tree.Path(static_cast<uint32_t>(i));
    std::string time = Time(e.mtime_sec());
    if (!e.implicit()) {
      std::string size = absl::StrCat(e.size());
      std::string name = path.empty() ? "./" : Quote(path);
      if (e.type() == index::v1::DIRECTORY && !path.empty()) name += "/";
      if (e.type() == index::v1::CHAR_DEVICE || e.type() == index::v1::BLOCK_DEVICE) {
        size = absl::StrCat(e.dev_major(), ",", e.dev_minor());
      }
      if (e.type() == index::v1::SYMLINK) {
        absl::StrAppend(&name, " -> ", Quote(e.link_target()));
      }
      if (e.type() == index::v1::HARDLINK) {
        absl::StrAppend(&name, " link to ", Quote(e.link_target()));
      }
      if (e.type() == index::v1::WHITEOUT) {
        std::string parent = tree.Path(e.parent());
        name = Quote(absl::StrCat(parent, parent.empty() ? "" : "/", ".wh.", e.name()));
      }
      PrintLine(ModeString(TypeChar(e), e.mode()), Owner(e), size, time, name, out);
    }
    if (e.opaque()) {
      PrintLine(ModeString('-', 0), Owner(e), "0", time,
                Quote(absl::StrCat(path, path.empty() ? "" : "/", ".wh..wh..opq")), out);
    }
  }
  uint64_t index_size = EncodeIndex(index).size();
  out << absl::StrFormat(
      "# %d entries, %d checkpoints, %d spans; layer %s %s, %d bytes compressed, "
      "%d uncompressed (diff id %s); index %d bytes (%.3f%% of uncompressed)\n",
      index.entries_size(), index.checkpoints_size(), SpanCount(index),
      index.compression() == index::v1::GZIP ? "gzip" : "tar", index.layer_digest(),
      index.compressed_size(), index.uncompressed_size(), index.diff_id(), index_size,
      index.uncompressed_size() ? 100.0 * index_size / index.uncompressed_size() : 0.0);
  return absl::OkStatus();
}

absl::Status IndexCatCommand(const std::string& index_path, const std::string& layer_path,
                             const std::string& path, std::ostream& out) {
  CLIP_ASSIGN_OR_RETURN(LayerIndex loaded, LoadIndex(index_path));
  auto index = std::make_shared<const LayerIndex>(std::move(loaded));
  CLIP_ASSIGN_OR_RETURN(std::shared_ptr<FileBlobReader> blob, FileBlobReader::Open(layer_path));
  CLIP_ASSIGN_OR_RETURN(uint64_t blob_size, blob->Size());
  if (blob_size != index->compressed_size()) {
    return absl::InvalidArgumentError(absl::StrCat(layer_path, " is ", blob_size,
                                                   " bytes; the index is for a layer of ",
                                                   index->compressed_size()));
  }
  EntryTree tree(*index);
  std::optional<uint32_t> id = tree.Resolve(path);
  if (!id) return absl::NotFoundError(absl::StrCat(path, ": no such file in the layer"));
  LayerReader reader(index, std::make_shared<SpanInflater>(index, *blob));
  std::string buf(1 << 20, '\0');
  for (uint64_t off = 0;;) {
    CLIP_ASSIGN_OR_RETURN(size_t n, reader.ReadFile(*id, off, absl::MakeSpan(buf)));
    if (n == 0) break;
    out.write(buf.data(), static_cast<std::streamsize>(n));
    off += n;
  }
  out.flush();
  if (!out) return absl::InternalError("write to output failed");
  return absl::OkStatus();
}

}  // namespace clip
