// libFuzzer target: arbitrary bytes through the tar parser and the entry table, fed
// in two chunks split at a data-chosen point. Must never crash, hang or leak.
#include <cstddef>
#include <cstdint>

#include "index/entry_table.h"
#include "index/tar_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  size_t split = size > 0 ? data[0] % (size + 1) : 0;
  clip::EntryTable table;
  clip::TarParser parser([&](const clip::TarMember& m) { return table.Add(m); });
  if (parser.Feed(in.substr(0, split)).ok() && parser.Feed(in.substr(split)).ok() &&
      parser.Finish().ok()) {
    (void)std::move(table).Finish();
  }
  return 0;
}
