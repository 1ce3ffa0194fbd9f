// libFuzzer target: arbitrary bytes through DecodeIndex, twice: as they are, and
// re-framed with a valid checksum so the protobuf parse and the invariants are
// reached. A decoded index must also survive building its entry tree and encode to
// bytes that read back as itself.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/digest.h"
#include "index/entry_tree.h"
#include "index/index_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string raw(reinterpret_cast<const char*>(data), size);
  (void)clip::DecodeIndex(raw);
  // Frame the bytes as an uncompressed payload with a correct checksum.
  std::string framed(clip::kIndexMagic, sizeof(clip::kIndexMagic));
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) framed.push_back(static_cast<char>(v >> (8 * i)));
  };
  put(clip::kIndexFormatVersion, 4);
  put(0, 4);
  put(raw.size(), 8);
  put(raw.size(), 8);
  framed += raw;
  clip::Digest sum = clip::Digest::Of(framed);
  framed.append(reinterpret_cast<const char*>(sum.bytes().data()), clip::Digest::kSize);
  auto index = clip::DecodeIndex(framed);
  if (index.ok()) {
    // What decodes must encode and read back unchanged (what `clipctl index` checks
    // before it writes or publishes).
    if (!clip::EncodeCheckedIndex(*index).ok()) __builtin_trap();
    clip::EntryTree tree(*index);
    for (uint32_t i = 0; i < static_cast<uint32_t>(index->entries_size()); ++i) {
      (void)tree.Path(i);
    }
  }
  return 0;
}
