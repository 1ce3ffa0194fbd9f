#include "index/layer_reader.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace clip {

absl::StatusOr<std::shared_ptr<const std::string>> LayerReader::Span(size_t span) const {
  {
    absl::MutexLock lock(&mu_);
    if (span == last_span_) return last_bytes_;
  }
  // Fetched without the lock: concurrent readers of other spans do not wait.
  CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes, spans_->GetSpan(span));
  absl::MutexLock lock(&mu_);
  last_span_ = span;
  last_bytes_ = bytes;
  return bytes;
}

absl::StatusOr<size_t> LayerReader::ReadAt(uint64_t offset, absl::Span<char> dst) const {
  const uint64_t size = index_->uncompressed_size();
  if (offset >= size || dst.empty()) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(dst.size(), size - offset));
  size_t done = 0;
  size_t span = SpanAt(*index_, offset);
  while (done < want) {
    SpanInfo info = GetSpanInfo(*index_, span);
    CLIP_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes, Span(span));
    uint64_t pos = offset + done;
    uint64_t in_span = pos - info.offset;
    size_t n = static_cast<size_t>(std::min<uint64_t>(want - done, info.size - in_span));
    std::memcpy(dst.data() + done, bytes->data() + in_span, n);
    done += n;
    ++span;
  }
  return done;
}

absl::StatusOr<size_t> LayerReader::ReadFile(uint32_t entry, uint64_t offset,
                                             absl::Span<char> dst) const {
  if (entry >= static_cast<uint32_t>(index_->entries_size())) {
    return absl::NotFoundError(absl::StrCat("no entry ", entry));
  }
  const auto* e = &index_->entries(static_cast<int>(entry));
  if (e->type() == index::v1::HARDLINK) e = &index_->entries(static_cast<int>(e->link_entry()));
  if (e->type() != index::v1::REGULAR) {
    return absl::InvalidArgumentError(absl::StrCat("entry ", entry, " is not a regular file"));
  }
  if (offset >= e->size()) return 0;
  size_t n = static_cast<size_t>(std::min<uint64_t>(dst.size(), e->size() - offset));
  return ReadAt(e->data_offset() + offset, dst.subspan(0, n));
}

}  // namespace clip
