#include "lazy/tiered_span_source.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace clip {

void SpanAccessLog::Note(size_t span) {
  absl::MutexLock lock(&mu_);
  if (!seen_.insert(static_cast<uint32_t>(span)).second) return;
  order_.push_back(static_cast<uint32_t>(span));
  last_new_ = absl::Now();
}

std::vector<uint32_t> SpanAccessLog::spans() const {
  absl::MutexLock lock(&mu_);
  return order_;
}

absl::Time SpanAccessLog::last_new() const {
  absl::MutexLock lock(&mu_);
  return last_new_;
}

TieredSpanSource::TieredSpanSource(std::shared_ptr<const index::v1::LayerIndex> index,
                                   std::shared_ptr<const SpanSource> origin, CacheTiers tiers)
    : index_(std::move(index)), origin_(std::move(origin)), tiers_(tiers) {}

std::optional<SpanBytes> TieredSpanSource::TryTier(SpanStore* tier, const Digest& key) const {
  if (tier == nullptr) return std::nullopt;
  absl::StatusOr<std::optional<SpanBytes>> got = tier->Get(key);
  if (!got.ok()) {
    log_.Log(LogLevel::kWarning, "cache",
             absl::StrCat(tier->name(), " tier failed, skipped: ", got.status().message()));
    return std::nullopt;
  }
  return *got;
}

void TieredSpanSource::Fill(SpanStore* tier, const Digest& key, const SpanBytes& bytes) const {
  if (tier == nullptr) return;
  if (tiers_.write_back != nullptr && tier != tiers_.memory) {
    tiers_.write_back->Submit(tier, key, bytes);  // shed (and counted) when full
    return;
  }
  absl::Status s = tier->Put(key, bytes);
  if (!s.ok()) {
    log_.Log(LogLevel::kWarning, "cache",
             absl::StrCat(tier->name(), " tier write failed: ", s.message()));
  }
}

absl::StatusOr<SpanBytes> TieredSpanSource::FetchBelowMemory(size_t span, const Digest& key,
                                                             bool fill_memory) const {
  const absl::Time start = absl::Now();
  // Request-level detail for log_level = "debug": where each span below memory came from.
  auto debug = [&](absl::string_view from, size_t bytes) {
    if (GetLogLevel() > LogLevel::kDebug) return;
    Log(LogLevel::kDebug, "cache",
        absl::StrCat("span ", span, " of ", index_->layer_digest(), " (", bytes, " bytes) from ",
                     from, " in ", absl::FormatDuration(absl::Now() - start)));
  };
  if (auto hit = TryTier(tiers_.disk, key)) {
    if (fill_memory) Fill(tiers_.memory, key, *hit);
    debug("disk cache", (*hit)->size());
    return *hit;
  }
  if (auto hit = TryTier(tiers_.remote, key)) {
    if (fill_memory) Fill(tiers_.memory, key, *hit);
    Fill(tiers_.disk, key, *hit);
    debug("remote cache", (*hit)->size());
    return *hit;
  }
  origin_fetches_.fetch_add(1, std::memory_order_relaxed);
  CLIP_ASSIGN_OR_RETURN(SpanBytes bytes, origin_->GetSpan(span));  // verified by the origin
  debug("registry", bytes->size());
  if (fill_memory) Fill(tiers_.memory, key, bytes);
  Fill(tiers_.disk, key, bytes);
  Fill(tiers_.remote, key, bytes);
  return bytes;
}

std::shared_ptr<TieredSpanSource::Flight> TieredSpanSource::Lead(const Digest& key) const {
  absl::MutexLock lock(&flights_mu_);
  auto& slot = flights_[key];
  if (slot) return nullptr;
  slot = std::make_shared<Flight>();
  return slot;
}

void TieredSpanSource::Land(const Digest& key, const std::shared_ptr<Flight>& flight,
                            absl::StatusOr<SpanBytes> result) const {
  {
    absl::MutexLock lock(&flights_mu_);
    flights_.erase(key);
  }
  absl::MutexLock lock(&flight->mu);
  flight->result = std::move(result);
  flight->done = true;
}

absl::StatusOr<SpanBytes> TieredSpanSource::SingleFlight(size_t span, const Digest& key,
                                                         bool fill_memory) const {
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&flights_mu_);
    auto& slot = flights_[key];
    if (!slot) {
      slot = std::make_shared<Flight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) {
    absl::MutexLock lock(&flight->mu);
    flight->mu.Await(absl::Condition(&flight->done));
    return flight->result;
  }
  absl::StatusOr<SpanBytes> result = FetchBelowMemory(span, key, fill_memory);
  Land(key, flight, result);
  return result;
}

void TieredSpanSource::SetAccessLog(std::shared_ptr<SpanAccessLog> log) const {
  absl::MutexLock lock(&log_mu_);
  access_log_ = std::move(log);
}

absl::StatusOr<size_t> TieredSpanSource::Warm(size_t first, size_t count) const {
  const size_t total = SpanCount(*index_);
  if (count == 0 || first >= total || count > total - first) {
    return absl::OutOfRangeError(absl::StrCat("spans ", first, "+", count, " of ", total));
  }
  // Spans this call leads, by position; the origin fetches them in adjacent runs.
  std::vector<std::shared_ptr<Flight>> led(count);
  std::vector<Digest> keys(count);
  for (size_t i = 0; i < count; ++i) {
    keys[i] = GetSpanInfo(*index_, first + i).digest;
    if (tiers_.memory != nullptr && tiers_.memory->Contains(keys[i])) continue;
    led[i] = Lead(keys[i]);
    if (led[i] == nullptr) continue;  // in flight elsewhere: that fetch fills it
    for (SpanStore* tier : {tiers_.disk, tiers_.remote}) {
      if (auto hit = TryTier(tier, keys[i])) {
        Fill(tiers_.memory, keys[i], *hit);
        if (tier == tiers_.remote) Fill(tiers_.disk, keys[i], *hit);
        Land(keys[i], led[i], *hit);
        led[i] = nullptr;
        break;
      }
    }
  }
  size_t fetched = 0;
  absl::Status failed;
  for (size_t i = 0; i < count;) {
    if (led[i] == nullptr) {
      ++i;
      continue;
    }
    size_t run = 1;
    while (i + run < count && led[i + run] != nullptr) ++run;
    origin_fetches_.fetch_add(run, std::memory_order_relaxed);
    absl::StatusOr<std::vector<SpanBytes>> got = origin_->GetSpans(first + i, run);
    for (size_t k = 0; k < run; ++k) {
      if (got.ok()) {
        const SpanBytes& bytes = (*got)[k];
        Fill(tiers_.memory, keys[i + k], bytes);
        Fill(tiers_.disk, keys[i + k], bytes);
        Fill(tiers_.remote, keys[i + k], bytes);
        Land(keys[i + k], led[i + k], bytes);
      } else {
        Land(keys[i + k], led[i + k], got.status());
      }
    }
    if (got.ok()) {
      fetched += run;
    } else if (failed.ok()) {
      failed = got.status();
    }
    i += run;
  }
  if (!failed.ok()) return failed;
  return fetched;
}

absl::StatusOr<std::shared_ptr<const std::string>> TieredSpanSource::GetSpan(size_t span) const {
  return GetSpanForRead(span, ReadHint{});
}

absl::StatusOr<std::shared_ptr<const std::string>> TieredSpanSource::GetSpanForRead(
    size_t span, const ReadHint& hint) const {
  if (span >= SpanCount(*index_)) {
    return absl::OutOfRangeError(absl::StrCat("span ", span, " of ", SpanCount(*index_)));
  }
  reads_.fetch_add(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&log_mu_);
    if (access_log_ != nullptr) access_log_->Note(span);
  }
  Digest key = GetSpanInfo(*index_, span).digest;
  if (auto hit = TryTier(tiers_.memory, key)) {
    MaybeReadAhead(span, hint);
    return *hit;
  }
  foreground_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<SpanBytes> bytes = SingleFlight(span, key, /*fill_memory=*/true);
  foreground_.fetch_sub(1, std::memory_order_relaxed);
  if (bytes.ok()) MaybeReadAhead(span, hint);
  return bytes;
}

void TieredSpanSource::MaybeReadAhead(size_t span, const ReadHint& hint) const {
  if (tiers_.readahead == nullptr || tiers_.readahead_spans <= 0 || tiers_.memory == nullptr) {
    return;
  }
  const int64_t previous = last_span_.exchange(static_cast<int64_t>(span));
  const bool in_order = previous == static_cast<int64_t>(span) - 1;
  size_t last = SpanCount(*index_) - 1;  // how far ahead may go
  int ahead = tiers_.readahead_spans;
  if (hint.last_span == SIZE_MAX) {  // not a file read: the layer's order only
    if (!in_order) return;
  } else if (span < hint.last_span) {  // inside a file: from its start or in order
    if (!in_order && !hint.file_start) return;
    last = std::min(last, hint.last_span);
  } else {  // the file ends here: an in-order reader of the layer gets one span more
    if (!in_order) return;
    ahead = 1;
  }
  std::weak_ptr<const TieredSpanSource> weak = weak_from_this();
  if (weak.expired()) return;  // not owned by a shared_ptr: nothing can outlive a job
  for (int k = 1; k <= ahead; ++k) {
    const size_t next = span + static_cast<size_t>(k);
    if (next > last) break;
    const Digest key = GetSpanInfo(*index_, next).digest;
    if (tiers_.memory->Contains(key)) continue;
    if (readahead_inflight_.fetch_add(1) >= 2 * tiers_.readahead_spans) {
      readahead_inflight_.fetch_sub(1);
      break;
    }
    bool queued = tiers_.readahead->Submit([weak, next, key] {
      std::shared_ptr<const TieredSpanSource> self = weak.lock();
      if (self == nullptr) return;  // unmounted: nothing to do
      if (!self->tiers_.memory->Contains(key)) {
        absl::StatusOr<SpanBytes> got = self->SingleFlight(next, key, /*fill_memory=*/true);
        if (got.ok()) {
          self->readaheads_.fetch_add(1, std::memory_order_relaxed);
        } else {
          self->last_span_.store(-2);  // stop until the reader is sequential again
        }
      }
      self->readahead_inflight_.fetch_sub(1);
    });
    if (!queued) {
      readahead_inflight_.fetch_sub(1);
      break;
    }
  }
}

absl::StatusOr<uint64_t> TieredSpanSource::Prefetch(size_t span) const {
  if (span >= SpanCount(*index_)) return absl::OutOfRangeError("span out of range");
  SpanInfo info = GetSpanInfo(*index_, span);
  // A file already on disk is enough (it is verified whenever it is read).
  if (tiers_.disk != nullptr && tiers_.disk->Contains(info.digest)) return 0;
  // Without filling memory: a background fill must not evict the hot set.
  CLIP_ASSIGN_OR_RETURN(SpanBytes bytes, SingleFlight(span, info.digest, /*fill_memory=*/false));
  return bytes->size();
}

}  // namespace clip
