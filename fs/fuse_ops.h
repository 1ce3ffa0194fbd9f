// The adapter between libfuse's low-level API and LayerFs: the callbacks of every
// FUSE mount of a FuseServer (session userdata: its FuseMount), with per-operation
// metrics, and the custom I/O of its /dev/fuse fd, which patches what libfuse 3.14
// cannot say (fs/passthrough.h) and drops the reply to a replayed INIT (fs/fuse_handover.h).
// Errors become errno here and nowhere else.
//
// Thread safety: the callbacks run on any worker thread, one request each; they share
// only the mount's state (fs/fuse_mount.h).
#ifndef CLIP_FS_FUSE_OPS_H_
#define CLIP_FS_FUSE_OPS_H_

struct fuse_lowlevel_ops;
struct fuse_custom_io;

namespace clip {

// The callbacks of every mount (userdata: its FuseMount).
const fuse_lowlevel_ops& FuseOps();
// The same I/O for first and later servers, so they negotiate identically (custom I/O
// also means no splice in libfuse 3.14). Userdata: the FuseMount.
const fuse_custom_io& FuseIo();

}  // namespace clip

#endif  // CLIP_FS_FUSE_OPS_H_
