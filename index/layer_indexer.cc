#include "index/layer_indexer.h"

#include <zlib.h>

#include <cstring>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "index/entry_table.h"
#include "index/gzip_checkpoint.h"
#include "index/tar_parser.h"

namespace clip {
namespace {

using index::v1::LayerIndex;

constexpr size_t kReadSize = 1 << 20;
// Work buffer for inflated output: a 32 KiB window, then room for one deflate block.
constexpr size_t kOutBufferSize = 8 << 20;

// Sequential reads of a blob, hashing what is read.
class BlobStream {
 public:
  explicit BlobStream(const BlobReader& blob) : blob_(blob), buf_(kReadSize, '\0') {}

  // Next chunk; empty at the end of the blob.
  absl::StatusOr<absl::string_view> Next() {
    CLIP_ASSIGN_OR_RETURN(size_t n, blob_.ReadAt(offset_, absl::MakeSpan(buf_)));
    hasher_.Update(buf_.data(), n);
    offset_ += n;
    return absl::string_view(buf_.data(), n);
  }
  uint64_t offset() const { return offset_; }
  Digest Finish() { return hasher_.Finish(); }

 private:
  const BlobReader& blob_;
  std::string buf_;
  uint64_t offset_ = 0;
  Sha256Hasher hasher_;
};

// Computes the DiffID and the span digests on a second thread, so sha256 overlaps
// inflation. Work arrives in stream order through a bounded queue of copied bytes.
class HashWorker {
 public:
  HashWorker() : thread_([this] { Loop(); }) {}
  ~HashWorker() {
    Push(Op{Op::kStop, {}});
    thread_.join();
  }

  void Diff(absl::string_view data) { Push(Op{Op::kDiff, std::string(data)}); }
  void Span(absl::string_view data) { Push(Op{Op::kSpan, std::string(data)}); }
  void FinishSpan() { Push(Op{Op::kFinishSpan, {}}); }

  // Waits for all queued work; returns the DiffID and the span digests in order.
  std::pair<Digest, std::vector<Digest>> Results() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](HashWorker* w)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->queue_.empty() && !w->busy_; },
        this));
    return {diff_.Finish(), spans_};
  }

 private:
  static constexpr size_t kMaxQueuedBytes = 64 << 20;
  struct Op {
    enum Kind { kDiff, kSpan, kFinishSpan, kStop } kind;
    std::string data;
  };

  void Push(Op op) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](HashWorker* w)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->queued_bytes_ < kMaxQueuedBytes; },
        this));
    queued_bytes_ += op.data.size();
    queue_.push_back(std::move(op));
  }

  void Loop() {
    for (;;) {
      Op op;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](HashWorker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return !w->queue_.empty(); },
            this));
        op = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= op.data.size();
        busy_ = true;
      }
      // Hashers are touched only by this thread between Push and Results.
      switch (op.kind) {
        case Op::kDiff:
          diff_.Update(op.data);
          break;
        case Op::kSpan:
          span_.Update(op.data);
          break;
        case Op::kFinishSpan: {
          Digest d = span_.Finish();
          absl::MutexLock lock(&mu_);
          spans_.push_back(d);
          break;
        }
        case Op::kStop:
          return;
      }
      absl::MutexLock lock(&mu_);
      busy_ = false;
    }
  }

  absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Digest> spans_ ABSL_GUARDED_BY(mu_);
  Sha256Hasher diff_;   // Worker thread only (until Results).
  Sha256Hasher span_;   // Worker thread only.
  std::thread thread_;  // Last: starts after the members above exist.
};

// Everything both layer kinds share: the tar parse, the entry table, the DiffID, the
// span hashing and the checkpoint list.
class IndexBuilder {
 public:
  explicit IndexBuilder(const IndexOptions& options)
      : options_(options), parser_([this](const TarMember& m) {
          ++members_;
          if (m.type == TarType::kRegular && m.size > options_.large_file_threshold) {
            large_starts_.push_back(m.data_offset);
            large_files_.push_back({m.data_offset, m.data_offset + m.size});
          }
          return table_.Add(m);
        }) {}

  // Output bytes in stream order: parse and hash for the DiffID. Span hashing is
  // separate (HashSpan) because a checkpoint may be placed behind the stream.
  absl::Status Consume(absl::string_view out) {
    hashes_.Diff(out);
    total_ += out.size();
    return parser_.Feed(out);
  }

  void HashSpan(absl::string_view out) {
    if (!out.empty()) hashes_.Span(out);
  }

  void AddCheckpoint(uint64_t coff, uint32_t bits, uint64_t uoff, absl::string_view window) {
    if (!index_.checkpoints().empty()) FinishSpan();
    auto* cp = index_.add_checkpoints();
    cp->set_compressed_offset(coff);
    cp->set_bits(bits);
    cp->set_uncompressed_offset(uoff);
    if (!window.empty()) cp->set_window(CompressWindow(window));
    last_checkpoint_ = uoff;
    spent_ += kCheckpointCostEstimate + cp->window().size();
    if (!cp->window().empty()) last_window_size_ = cp->window().size();
    while (!large_files_.empty() && large_files_.front().end <= uoff) large_files_.pop_front();
  }

  // Where the small-file rule would cut next: `small_file_interval` bytes of output
  // outside large files past the last checkpoint. 0 when the rule is off.
  uint64_t NextSmallFileCut() const {
    if (options_.small_file_interval == 0) return 0;
    uint64_t from = last_checkpoint_;
    for (const Range& r : large_files_) {
      if (r.start <= from && from < r.end) from = r.end;
    }
    return from + options_.small_file_interval;
  }

  // Whether a small-file checkpoint at uncompressed `uoff` (not inside a large file)
  // keeps the index within its budget of the output so far; `window` is whether it
  // carries one (gzip).
  bool SmallFileCutFits(uint64_t uoff, bool window) const {
    uint64_t next = NextSmallFileCut();
    if (next == 0 || uoff < next) return false;
    for (const Range& r : large_files_) {
      if (r.start <= uoff && uoff < r.end) return false;
    }
    double cost = static_cast<double>(spent_ + members_ * kEntryCostEstimate +
                                      kCheckpointCostEstimate + (window ? last_window_size_ : 0));
    return cost <= options_.max_index_ratio * static_cast<double>(uoff);
  }

  // Large-file data starts seen since the last call, in stream order.
  std::vector<uint64_t> TakeLargeStarts() { return std::move(large_starts_); }
  uint64_t last_checkpoint() const { return last_checkpoint_; }
  bool has_checkpoints() const { return !index_.checkpoints().empty(); }
  uint64_t total() const { return total_; }
  const IndexOptions& options() const { return options_; }

  absl::StatusOr<LayerIndex> Finish(index::v1::Compression compression, BlobStream& blob) {
    CLIP_RETURN_IF_ERROR(parser_.Finish());
    if (!has_checkpoints()) AddCheckpoint(0, 0, 0, "");
    FinishSpan();
    auto [diff_id, spans] = hashes_.Results();
    for (int i = 0; i < index_.checkpoints_size(); ++i) {
      index_.mutable_checkpoints(i)->set_span_sha256(
          reinterpret_cast<const char*>(spans[static_cast<size_t>(i)].bytes().data()),
          Digest::kSize);
    }
    CLIP_ASSIGN_OR_RETURN(auto entries, std::move(table_).Finish());
    for (auto& e : entries) *index_.add_entries() = std::move(e);
    index_.set_compression(compression);
    index_.set_layer_digest(blob.Finish().ToString());
    index_.set_compressed_size(blob.offset());
    index_.set_diff_id(diff_id.ToString());
    index_.set_uncompressed_size(total_);
    index_.set_checkpoint_interval(options_.checkpoint_interval);
    index_.set_large_file_threshold(options_.large_file_threshold);
    index_.set_small_file_interval(options_.small_file_interval);
    return std::move(index_);
  }

 private:
  struct Range {
    uint64_t start, end;
  };

  void FinishSpan() { hashes_.FinishSpan(); }

  IndexOptions options_;
  EntryTable table_;
  TarParser parser_;
  HashWorker hashes_;
  std::vector<uint64_t> large_starts_;
  // Data of the large files not yet behind the last checkpoint, in stream order.
  std::deque<Range> large_files_;
  LayerIndex index_;
  uint64_t total_ = 0;
  uint64_t last_checkpoint_ = 0;
  // The small-file budget: bytes spent on checkpoints, members seen, and the last
  // window's compressed size (the estimate for the next; 16 KiB before the first).
  uint64_t spent_ = 0;
  uint64_t members_ = 0;
  uint64_t last_window_size_ = 16 << 10;
};

absl::StatusOr<LayerIndex> IndexTar(BlobStream& blob, absl::string_view first,
                                    const IndexOptions& options) {
  IndexBuilder b(options);
  b.AddCheckpoint(0, 0, 0, "");
  absl::string_view chunk = first;
  while (!chunk.empty()) {
    uint64_t start = b.total();
    CLIP_RETURN_IF_ERROR(b.Consume(chunk));
    // Every offset is a boundary: cut spans exactly at large-file starts and at the
    // interval, in order.
    std::vector<uint64_t> cuts = b.TakeLargeStarts();
    uint64_t pos = start;
    size_t next_cut = 0;
    while (pos < b.total()) {
      uint64_t cut = b.last_checkpoint() + options.checkpoint_interval;
      while (next_cut < cuts.size() && cuts[next_cut] <= b.last_checkpoint()) ++next_cut;
      if (next_cut < cuts.size() && cuts[next_cut] < cut) cut = cuts[next_cut];
      uint64_t small = b.NextSmallFileCut();
      if (small != 0 && small < cut && small <= b.total() && b.SmallFileCutFits(small, false)) {
        cut = small;
      }
      uint64_t end = std::min(cut, b.total());
      b.HashSpan(chunk.substr(pos - start, end - pos));
      pos = end;
      if (pos == cut) b.AddCheckpoint(cut, 0, cut, "");
    }
    CLIP_ASSIGN_OR_RETURN(chunk, blob.Next());
  }
  return b.Finish(index::v1::NONE, blob);
}

absl::StatusOr<LayerIndex> IndexGzip(BlobStream& blob, absl::string_view first,
                                     const IndexOptions& options) {
  IndexBuilder b(options);
  z_stream s{};
  if (inflateInit2(&s, 15 + 16) != Z_OK) return absl::InternalError("inflateInit2 failed");
  absl::Cleanup end = [&s] { inflateEnd(&s); };

  std::unique_ptr<char[]> out(new char[kOutBufferSize]);
  size_t pos = 0;        // write position in `out`
  size_t seg_start = 0;  // start of the output since the last boundary, not yet span-hashed
  // The last boundary seen (a checkpoint candidate for the large-file rule).
  bool have_boundary = false;
  uint64_t b_coff = 0, b_uoff = 0;
  uint32_t b_bits = 0;

  absl::string_view in = first;  // unconsumed input; it always ends at blob.offset()
  bool member_done = false;
  for (;;) {
    if (in.empty()) {
      CLIP_ASSIGN_OR_RETURN(in, blob.Next());
      if (in.empty()) {
        if (member_done) break;
        return absl::DataLossError("gzip: layer is truncated (ends inside a gzip member)");
      }
    }
    if (member_done) {
      // After a member: another member, or trailing zero padding, or garbage.
      if (static_cast<unsigned char>(in[0]) == 0x1f) {
        if (inflateReset(&s) != Z_OK) return absl::InternalError("inflateReset failed");
        member_done = false;
      } else if (in.find_first_not_of('\0') == absl::string_view::npos) {
        in = {};
        continue;
      } else {
        return absl::DataLossError("gzip: trailing garbage after the last member");
      }
    }
    // Keep 32 KiB of history plus the unhashed segment; make room when needed.
    if (kOutBufferSize - pos < (1 << 20)) {
      size_t keep_from = seg_start >= kDeflateWindowSize ? seg_start - kDeflateWindowSize : 0;
      if (keep_from == 0 || kOutBufferSize - (pos - keep_from) < (1 << 20)) {
        // The segment outgrew the buffer (a huge deflate block): hash it now and give
        // up the lookback boundary; only the large-file optimisation is lost.
        b.HashSpan(absl::string_view(out.get() + seg_start, pos - seg_start));
        seg_start = pos;
        have_boundary = false;
        keep_from = pos - std::min<size_t>(pos, kDeflateWindowSize);
      }
      std::memmove(out.get(), out.get() + keep_from, pos - keep_from);
      pos -= keep_from;
      seg_start -= keep_from;
    }
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = reinterpret_cast<Bytef*>(out.get() + pos);
    s.avail_out = static_cast<uInt>(kOutBufferSize - pos);
    int ret = inflate(&s, Z_BLOCK);
    size_t consumed = in.size() - s.avail_in;
    in.remove_prefix(consumed);
    size_t produced = kOutBufferSize - pos - s.avail_out;
    if (ret != Z_OK && ret != Z_STREAM_END && !(ret == Z_BUF_ERROR && produced + consumed > 0)) {
      return absl::DataLossError(
          absl::StrCat("gzip: corrupt layer: ", s.msg ? s.msg : "inflate error"));
    }
    CLIP_RETURN_IF_ERROR(b.Consume(absl::string_view(out.get() + pos, produced)));
    pos += produced;
    if (ret == Z_STREAM_END) {
      member_done = true;
      continue;
    }
    bool at_boundary = (s.data_type & 128) && !(s.data_type & 64);
    if (!at_boundary) continue;

    uint64_t e = b.total();
    uint64_t coff = blob.offset() - in.size();
    uint32_t bits = static_cast<uint32_t>(s.data_type & 7);
    bool want_here = false;
    bool want_prev = false;
    for (uint64_t d : b.TakeLargeStarts()) {
      if (d == e) {
        want_here = true;
      } else {
        want_prev = true;  // b_uoff < d < e: the last boundary before d is b.
      }
    }
    if (want_prev && have_boundary && b_uoff > b.last_checkpoint()) {
      size_t wstart =
          seg_start - std::min<size_t>(seg_start, std::min<uint64_t>(b_uoff, kDeflateWindowSize));
      b.AddCheckpoint(b_coff, b_bits, b_uoff,
                      absl::string_view(out.get() + wstart, seg_start - wstart));
    }
    b.HashSpan(absl::string_view(out.get() + seg_start, pos - seg_start));
    seg_start = pos;
    have_boundary = true;
    b_coff = coff;
    b_bits = bits;
    b_uoff = e;
    if (!b.has_checkpoints() || want_here ||
        e - b.last_checkpoint() >= b.options().checkpoint_interval || b.SmallFileCutFits(e, true)) {
      if (b.has_checkpoints() && e == b.last_checkpoint()) continue;  // e.g. an empty block
      size_t wstart = pos - std::min<size_t>(pos, std::min<uint64_t>(e, kDeflateWindowSize));
      b.AddCheckpoint(coff, bits, e, absl::string_view(out.get() + wstart, pos - wstart));
    }
  }
  b.HashSpan(absl::string_view(out.get() + seg_start, pos - seg_start));
  return b.Finish(index::v1::GZIP, blob);
}

}  // namespace

absl::StatusOr<LayerIndex> BuildLayerIndex(const BlobReader& layer, const IndexOptions& options) {
  if (options.checkpoint_interval == 0) {
    return absl::InvalidArgumentError("checkpoint interval must be positive");
  }
  if (options.small_file_interval > options.checkpoint_interval) {
    return absl::InvalidArgumentError(
        "small-file interval must not exceed the checkpoint interval");
  }
  BlobStream blob(layer);
  CLIP_ASSIGN_OR_RETURN(absl::string_view first, blob.Next());
  auto byte = [&](size_t i) {
    return i < first.size() ? static_cast<unsigned char>(first[i]) : -1;
  };
  if (byte(0) == 0x1f && byte(1) == 0x8b) return IndexGzip(blob, first, options);
  if (byte(0) == 0x28 && byte(1) == 0xb5 && byte(2) == 0x2f && byte(3) == 0xfd) {
    return absl::UnimplementedError("zstd layers are not supported yet");
  }
  return IndexTar(blob, first, options);
}

}  // namespace clip
