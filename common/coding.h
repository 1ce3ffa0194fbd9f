// Fixed-width little-endian integers in byte strings: the framing of clip's file
// formats (index and access-profile headers, disk-cache span trailers, snapshot
// labels), written the same way everywhere, whatever the host's byte order.
//
//   std::string out;
//   PutFixed32(&out, version);
//   uint32_t back = DecodeFixed32(out.data());  // the caller checked 4 bytes are there
//
// Thread safety: pure functions.
#ifndef CLIP_COMMON_CODING_H_
#define CLIP_COMMON_CODING_H_

#include <cstdint>
#include <string>

namespace clip {

inline void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

inline void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// `p` must point at 4 (8) readable bytes.
inline uint32_t DecodeFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

inline uint64_t DecodeFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace clip

#endif  // CLIP_COMMON_CODING_H_
