// The media types and annotations clip's documents carry in a registry (see
// index_artifact.h and image_binding.h for the documents themselves).
//
// Thread safety: constants.
#ifndef CLIP_REGISTRY_CLIP_MEDIA_TYPES_H_
#define CLIP_REGISTRY_CLIP_MEDIA_TYPES_H_

namespace clip {

inline constexpr char kClipIndexArtifactType[] = "application/vnd.clip.index.v1";
inline constexpr char kClipIndexMediaType[] = "application/vnd.clip.index.v1";
inline constexpr char kClipProfileMediaType[] = "application/vnd.clip.profile.v1";
inline constexpr char kClipLayerAnnotation[] = "dev.clip.layer.digest";
inline constexpr char kOciEmptyMediaType[] = "application/vnd.oci.empty.v1+json";

}  // namespace clip

#endif  // CLIP_REGISTRY_CLIP_MEDIA_TYPES_H_
