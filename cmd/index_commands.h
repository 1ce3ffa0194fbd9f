// The `clipctl index ...` commands as functions: the CLI parses flags and calls these;
// tests call them directly. Output goes to the given stream, errors are returned.
//
// Thread safety: independent calls may run concurrently.
#ifndef CLIP_CMD_INDEX_COMMANDS_H_
#define CLIP_CMD_INDEX_COMMANDS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "index/layer_indexer.h"

namespace clip {

// `clipctl index build --layer LAYER -o INDEX`: prints a one-line summary.
absl::Status IndexBuildCommand(const std::string& layer_path, const std::string& index_path,
                               const IndexOptions& options, std::ostream& out);

// `clipctl index inspect INDEX`: one `tar -tv`-like line per member, then a summary.
// With `spans`: one line per span instead, "span N UOFF ULEN COFF CLEN WINDOW" (its
// uncompressed range, the compressed bytes a fetch reads, its stored window's size).
absl::Status IndexInspectCommand(const std::string& index_path, bool spans, std::ostream& out);

// `clipctl index cat INDEX --layer LAYER PATH`: the file's bytes.
absl::Status IndexCatCommand(const std::string& index_path, const std::string& layer_path,
                             const std::string& path, std::ostream& out);

}  // namespace clip

#endif  // CLIP_CMD_INDEX_COMMANDS_H_
