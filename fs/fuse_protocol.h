// Facts of the FUSE protocol (Linux's include/uapi/linux/fuse.h) that clip patches or
// parses itself: Debian 12's header stops at protocol 7.38 and libfuse 3.14 has no API
// for resend (7.40) or passthrough (7.40), so their constants are here, from the
// protocol's documentation, with the byte offsets of the fields clip touches.
//
// Thread safety: constants and pure functions.
#ifndef CLIP_FS_FUSE_PROTOCOL_H_
#define CLIP_FS_FUSE_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace clip::fuse_protocol {

constexpr size_t kInHeaderSize = 40;   // fuse_in_header: len, opcode, unique, nodeid, ...
constexpr size_t kOutHeaderSize = 16;  // fuse_out_header: len, error, unique
constexpr uint32_t kOpInit = 26;       // FUSE_INIT
// fuse_init_in / fuse_init_out.
constexpr size_t kInitFlagsAt = 12;          // flags (both)
constexpr size_t kInitInFlags2At = 16;       // fuse_init_in: flags2
constexpr size_t kInitOutFlags2At = 32;      // fuse_init_out: flags2
constexpr size_t kInitOutStackDepthAt = 36;  // fuse_init_out: max_stack_depth (7.40)
constexpr uint32_t kInitExt = 1u << 30;      // FUSE_INIT_EXT in flags: flags2 is valid
constexpr uint32_t kHasResend = 1u << 7;     // FUSE_HAS_RESEND (bit 39) in flags2
constexpr uint32_t kPassthrough = 1u << 5;   // FUSE_PASSTHROUGH (bit 37) in flags2
constexpr int32_t kNotifyResend = 7;         // FUSE_NOTIFY_RESEND (7.40, Linux 6.9)
// fuse_open_out: fh (8), open_flags (4), backing_id (4; "padding" before 7.40).
constexpr size_t kOpenOutSize = 16;
constexpr uint32_t kOpenPassthrough = 1u << 7;  // FOPEN_PASSTHROUGH

inline uint32_t U32At(const void* base, size_t at) {
  uint32_t v;
  std::memcpy(&v, static_cast<const char*>(base) + at, sizeof(v));
  return v;
}

inline void SetU32At(void* base, size_t at, uint32_t v) {
  std::memcpy(static_cast<char*>(base) + at, &v, sizeof(v));
}

}  // namespace clip::fuse_protocol

#endif  // CLIP_FS_FUSE_PROTOCOL_H_
