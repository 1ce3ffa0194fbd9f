#include "index/layer_reader.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace clip {

absl::StatusOr<std::shared_ptr<const std::string>> LayerReader::Span(size_t span,
                                                                     const ReadHint& hint) const {
  {
    absl::MutexLock lock(&mu_);
    if (span == last_span_) return last_bytes_;
  }
  // Fetched without the lock: concurrent readers of other spans do not wait.
  CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes,
                        spans_->GetSpanForRead(span, hint));
  absl::MutexLock lock(&mu_);
  last_span_ = span;
  last_bytes_ = bytes;
  return bytes;
}

absl::StatusOr<std::vector<SpanSlice>> LayerReader::SlicesAt(uint64_t offset, size_t size) const {
  return Slices(offset, size, ReadHint{});
}

absl::StatusOr<std::vector<SpanSlice>> LayerReader::Slices(uint64_t offset, size_t size,
                                                           ReadHint hint) const {
  std::vector<SpanSlice> slices;
  const uint64_t total = index_->uncompressed_size();
  if (offset >= total || size == 0) return slices;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(size, total - offset));
  size_t done = 0;
  size_t span = SpanAt(*index_, offset);
  while (done < want) {
    SpanInfo info = GetSpanInfo(*index_, span);
    CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes, Span(span, hint));
    hint.file_start = false;  // only the read's first span starts the file
    const uint64_t in_span = offset + done - info.offset;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(want - done, info.size - in_span));
    if (bytes->size() < in_span + n) {
      return absl::DataLossError(absl::StrCat("span ", span, " has ", bytes->size(),
                                              " bytes, the index says ", info.size));
    }
    const char* data = bytes->data() + in_span;
    slices.push_back(SpanSlice{std::move(bytes), data, n});
    done += n;
    ++span;
  }
  return slices;
}

absl::StatusOr<std::vector<SpanSlice>> LayerReader::FileSlices(uint32_t entry, uint64_t offset,
                                                               size_t size) const {
  if (entry >= static_cast<uint32_t>(index_->entries_size())) {
    return absl::NotFoundError(absl::StrCat("no entry ", entry));
  }
  const auto* e = &index_->entries(static_cast<int>(entry));
  if (e->type() == index::v1::HARDLINK) e = &index_->entries(static_cast<int>(e->link_entry()));
  if (e->type() != index::v1::REGULAR) {
    return absl::InvalidArgumentError(absl::StrCat("entry ", entry, " is not a regular file"));
  }
  if (offset >= e->size()) return std::vector<SpanSlice>();
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size, e->size() - offset));
  ReadHint hint;
  hint.last_span = SpanAt(*index_, e->data_offset() + e->size() - 1);
  hint.file_start = offset == 0;
  return Slices(e->data_offset() + offset, n, hint);
}

namespace {

size_t CopySlices(const std::vector<SpanSlice>& slices, absl::Span<char> dst) {
  size_t done = 0;
  for (const SpanSlice& s : slices) {
    std::memcpy(dst.data() + done, s.data, s.size);
    done += s.size;
  }
  return done;
}

}  // namespace

absl::StatusOr<size_t> LayerReader::ReadAt(uint64_t offset, absl::Span<char> dst) const {
  CLIP_ASSIGN_OR_RETURN(std::vector<SpanSlice> slices, SlicesAt(offset, dst.size()));
  return CopySlices(slices, dst);
}

absl::StatusOr<size_t> LayerReader::ReadFile(uint32_t entry, uint64_t offset,
                                             absl::Span<char> dst) const {
  CLIP_ASSIGN_OR_RETURN(std::vector<SpanSlice> slices, FileSlices(entry, offset, dst.size()));
  return CopySlices(slices, dst);
}

}  // namespace clip
