#include "cache/span_store.h"

namespace clip {

TierCounters::TierCounters(MetricsRegistry& registry, const std::string& tier)
    : hits(registry.GetCounter("clip_cache_hits_total", "Span cache hits", {{"tier", tier}})),
      misses(registry.GetCounter("clip_cache_misses_total", "Span cache misses", {{"tier", tier}})),
      bytes_read(registry.GetCounter("clip_cache_read_bytes_total", "Bytes served by a cache tier",
                                     {{"tier", tier}})),
      bytes_written(registry.GetCounter("clip_cache_written_bytes_total",
                                        "Bytes stored into a cache tier", {{"tier", tier}})),
      errors(
          registry.GetCounter("clip_cache_errors_total", "Cache tier failures", {{"tier", tier}})),
      evictions(registry.GetCounter("clip_cache_evictions_total", "Cache entries evicted",
                                    {{"tier", tier}})),
      corrupt(registry.GetCounter("clip_cache_corrupt_total", "Cache entries found corrupt",
                                  {{"tier", tier}})),
      dropped_writes(registry.GetCounter("clip_cache_dropped_writes_total",
                                         "Cache writes shed under back-pressure",
                                         {{"tier", tier}})) {}

SpanStore::SpanStore(const std::string& tier, MetricsRegistry* metrics)
    : own_metrics_(metrics == nullptr ? std::make_unique<MetricsRegistry>() : nullptr),
      counters_(metrics == nullptr ? *own_metrics_ : *metrics, tier) {}

}  // namespace clip
