// Reference: an image reference as users write it, parsed and normalised the way
// docker and containerd do (`python` -> `docker.io/library/python:latest`).
//
//   CLIP_ASSIGN_OR_RETURN(Reference ref, Reference::Parse("localhost:5000/app:v1"));
//   ref.domain();      // "localhost:5000"
//   ref.repository();  // "app"
//   ref.ToString();    // "localhost:5000/app:v1"
//
// The first path component is a registry domain when it contains '.' or ':' or is
// "localhost"; otherwise the domain is docker.io, where one-component names get the
// "library/" prefix. A reference with neither tag nor digest gets the tag "latest";
// with a digest, the digest is what is pulled (a tag may still be recorded).
//
// Thread safety: an immutable value.
#ifndef CLIP_REGISTRY_REFERENCE_H_
#define CLIP_REGISTRY_REFERENCE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"

namespace clip {

class Reference {
 public:
  static constexpr absl::string_view kDockerHub = "docker.io";

  // kInvalidArgument for anything docker would refuse (uppercase repository names,
  // empty components, bad tags, malformed digests); kUnimplemented for non-sha256.
  static absl::StatusOr<Reference> Parse(absl::string_view text);

  const std::string& domain() const { return domain_; }
  const std::string& repository() const { return repository_; }
  const std::string& tag() const { return tag_; }  // Empty when only a digest was given.
  const std::optional<Digest>& digest() const { return digest_; }

  // The tag or, when present, the digest: what goes after /manifests/.
  std::string ManifestReference() const;
  // "domain/repository[:tag][@digest]", fully qualified.
  std::string ToString() const;
  // "domain/repository".
  std::string Name() const;

  // A reference to `digest` in the same repository (e.g. a platform's manifest).
  Reference WithDigest(const Digest& digest) const;

  friend bool operator==(const Reference& a, const Reference& b) {
    return a.ToString() == b.ToString();
  }

 private:
  std::string domain_;
  std::string repository_;
  std::string tag_;
  std::optional<Digest> digest_;
};

}  // namespace clip

#endif  // CLIP_REGISTRY_REFERENCE_H_
