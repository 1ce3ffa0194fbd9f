#include "index/span_reader.h"

#include <algorithm>
#include <cstring>
#include <thread>

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

size_t SpanCount(const index::v1::LayerIndex& index) {
  return static_cast<size_t>(index.checkpoints_size());
}

SpanInfo GetSpanInfo(const index::v1::LayerIndex& index, size_t span) {
  const auto& cp = index.checkpoints(static_cast<int>(span));
  uint64_t end = span + 1 < SpanCount(index)
                     ? index.checkpoints(static_cast<int>(span + 1)).uncompressed_offset()
                     : index.uncompressed_size();
  std::array<uint8_t, Digest::kSize> bytes{};
  std::memcpy(bytes.data(), cp.span_sha256().data(),
              std::min<size_t>(Digest::kSize, cp.span_sha256().size()));
  return SpanInfo{cp.uncompressed_offset(), end - cp.uncompressed_offset(),
                  Digest::FromBytes(bytes)};
}

size_t SpanAt(const index::v1::LayerIndex& index, uint64_t offset) {
  const auto& cps = index.checkpoints();
  auto it = std::upper_bound(
      cps.begin(), cps.end(), offset,
      [](uint64_t off, const index::v1::Checkpoint& cp) { return off < cp.uncompressed_offset(); });
  return static_cast<size_t>(it - cps.begin()) - 1;  // cps[0] is at 0.
}

absl::StatusOr<std::shared_ptr<const std::string>> SpanInflater::GetSpan(size_t span) const {
  const index::v1::LayerIndex& index = *index_;
  if (span >= SpanCount(index)) {
    return absl::OutOfRangeError(absl::StrCat("span ", span, " of ", SpanCount(index)));
  }
  SpanInfo info = GetSpanInfo(index, span);
  const auto& cp = index.checkpoints(static_cast<int>(span));
  std::string out(info.size, '\0');
  Digest digest;
  if (index.compression() == index::v1::NONE) {
    CLIP_RETURN_IF_ERROR(ReadExactly(blob_, info.offset, absl::MakeSpan(out)));
    digest = Digest::Of(out);
  } else {
    // Compressed bytes from the checkpoint (its partial byte first) to the next one.
    uint64_t start = cp.compressed_offset() - (cp.bits() > 0 ? 1 : 0);
    uint64_t end = span + 1 < SpanCount(index)
                       ? index.checkpoints(static_cast<int>(span + 1)).compressed_offset()
                       : index.compressed_size();
    std::string input(end - start, '\0');
    CLIP_RETURN_IF_ERROR(ReadExactly(blob_, start, absl::MakeSpan(input)));
    std::string window;
    if (!cp.window().empty()) {
      CLIP_ASSIGN_OR_RETURN(window, DecompressWindow(cp.window()));
    }
    OverlappedSha256 hasher(out.data());
    absl::Status inflated = InflateFromCheckpoint(input, cp.bits(), window, absl::MakeSpan(out),
                                                  [&](size_t ready) { hasher.Advance(ready); });
    digest = hasher.Finish(inflated.ok() ? out.size() : 0);
    CLIP_RETURN_IF_ERROR(inflated);
  }
  if (digest != info.digest) {
    return absl::DataLossError(absl::StrCat("span ", span, " at offset ", info.offset,
                                            " does not match its sha256 ", info.digest.Hex()));
  }
  return std::make_shared<const std::string>(std::move(out));
}

}  // namespace clip
