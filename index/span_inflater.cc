#include "index/span_inflater.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "index/gzip_checkpoint.h"

namespace clip {

namespace {

// Hashes a buffer on a second thread while it is being filled, so a span's sha256
// costs little more than its inflation (cold-read latency). Advance() publishes how
// much of the buffer is final; Finish() waits for the rest.
class OverlappedSha256 {
 public:
  explicit OverlappedSha256(const char* base) : base_(base), thread_([this] { Run(); }) {}
  OverlappedSha256(const OverlappedSha256&) = delete;
  OverlappedSha256& operator=(const OverlappedSha256&) = delete;

  void Advance(size_t ready) {
    absl::MutexLock lock(&mu_);
    ready_ = ready;
  }

  // Must be called exactly once; `total` bytes of the buffer are hashed.
  Digest Finish(size_t total) {
    {
      absl::MutexLock lock(&mu_);
      ready_ = total;
      done_ = true;
    }
    thread_.join();
    return digest_;
  }

 private:
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ready_ > hashed_ || done_; }

  void Run() {
    for (;;) {
      size_t from, to;
      bool done;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &OverlappedSha256::HasWork));
        from = hashed_;
        to = ready_;
        done = done_;
      }
      if (to > from) {
        hasher_.Update(base_ + from, to - from);
        absl::MutexLock lock(&mu_);
        hashed_ = to;
      } else if (done) {
        break;
      }
    }
    digest_ = hasher_.Finish();
  }

  const char* const base_;
  mutable absl::Mutex mu_;
  size_t ready_ ABSL_GUARDED_BY(mu_) = 0;
  size_t hashed_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  Sha256Hasher hasher_;  // Hasher thread only.
  Digest digest_;        // Written by the hasher thread before it ends (read after join).
  std::thread thread_;   // Last: starts after the members above exist.
};

}  // namespace

namespace {

// Where span `span`'s compressed bytes lie in the blob: [start, end).
std::pair<uint64_t, uint64_t> CompressedRange(const index::v1::LayerIndex& index, size_t span) {
  const auto& cp = index.checkpoints(static_cast<int>(span));
  // From the checkpoint (its partial byte first) to the next one.
  uint64_t start = cp.compressed_offset() - (cp.bits() > 0 ? 1 : 0);
  uint64_t end = span + 1 < SpanCount(index)
                     ? index.checkpoints(static_cast<int>(span + 1)).compressed_offset()
                     : index.compressed_size();
  return {start, end};
}

}  // namespace

absl::StatusOr<std::shared_ptr<const std::string>> SpanInflater::GetSpan(size_t span) const {
  CLIP_ASSIGN_OR_RETURN(std::vector<std::shared_ptr<const std::string>> one, GetSpans(span, 1));
  return std::move(one[0]);
}

absl::StatusOr<std::vector<std::shared_ptr<const std::string>>> SpanInflater::GetSpans(
    size_t first, size_t count) const {
  const index::v1::LayerIndex& index = *index_;
  if (count == 0 || first >= SpanCount(index) || count > SpanCount(index) - first) {
    return absl::OutOfRangeError(
        absl::StrCat("spans ", first, "+", count, " of ", SpanCount(index)));
  }
  // One read for the whole run (one Range request from a registry).
  const uint64_t run_start = index.compression() == index::v1::NONE
                                 ? GetSpanInfo(index, first).offset
                                 : CompressedRange(index, first).first;
  const uint64_t run_end = index.compression() == index::v1::NONE
                               ? GetSpanInfo(index, first + count - 1).offset +
                                     GetSpanInfo(index, first + count - 1).size
                               : CompressedRange(index, first + count - 1).second;
  std::string input(run_end - run_start, '\0');
  CLIP_RETURN_IF_ERROR(ReadExactly(blob_, run_start, absl::MakeSpan(input)));
  std::vector<std::shared_ptr<const std::string>> out;
  for (size_t span = first; span < first + count; ++span) {
    SpanInfo info = GetSpanInfo(index, span);
    std::string bytes;
    Digest digest;
    if (index.compression() == index::v1::NONE) {
      bytes = input.substr(info.offset - run_start, info.size);
      digest = Digest::Of(bytes);
    } else {
      const auto& cp = index.checkpoints(static_cast<int>(span));
      auto [start, end] = CompressedRange(index, span);
      absl::string_view in = absl::string_view(input).substr(start - run_start, end - start);
      std::string window;
      if (!cp.window().empty()) {
        CLIP_ASSIGN_OR_RETURN(window, DecompressWindow(cp.window()));
      }
      bytes.assign(info.size, '\0');
      OverlappedSha256 hasher(bytes.data());
      absl::Status inflated = InflateFromCheckpoint(in, cp.bits(), window, absl::MakeSpan(bytes),
                                                    [&](size_t ready) { hasher.Advance(ready); });
      digest = hasher.Finish(inflated.ok() ? bytes.size() : 0);
      CLIP_RETURN_IF_ERROR(inflated);
    }
    if (digest != info.digest) {
      return absl::DataLossError(absl::StrCat("span ", span, " at offset ", info.offset,
                                              " does not match its sha256 ", info.digest.Hex()));
    }
    out.push_back(std::make_shared<const std::string>(std::move(bytes)));
  }
  return out;
}

}  // namespace clip
