// Digest: a sha256 content digest, as OCI descriptors and clip's caches use it.
//
// Printed form is OCI's `sha256:<64 lowercase hex>`; cache keys use the bare hex.
// Sha256Hasher computes one incrementally, for streams (layers, spans) that are
// never held in memory at once.
//
//   CLIP_ASSIGN_OR_RETURN(Digest want, Digest::Parse("sha256:e3b0c442..."));
//   Sha256Hasher h;
//   h.Update(chunk1);
//   h.Update(chunk2);
//   if (h.Finish() != want) return absl::DataLossError("digest mismatch");
//
// Thread safety: Digest is an immutable value, safe to share. A Sha256Hasher is
// not safe for concurrent use; use one per stream.
#ifndef CLIP_COMMON_DIGEST_H_
#define CLIP_COMMON_DIGEST_H_

#include <array>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace clip {

class Digest {
 public:
  static constexpr size_t kSize = 32;
  static constexpr absl::string_view kAlgorithmPrefix = "sha256:";

  // The digest of nothing (sha256 of the empty string); mostly useful as a default.
  Digest();

  // Parses `sha256:<64 lowercase hex>`. Other algorithms are kUnimplemented; anything
  // malformed is kInvalidArgument.
  static absl::StatusOr<Digest> Parse(absl::string_view text);
  // Parses the bare 64-hex form used as a cache key.
  static absl::StatusOr<Digest> ParseHex(absl::string_view hex);
  static Digest FromBytes(const std::array<uint8_t, kSize>& bytes);

  // sha256 of `data` in one call.
  static Digest Of(absl::string_view data);

  std::string ToString() const;  // "sha256:<hex>"
  std::string Hex() const;       // "<hex>"
  const std::array<uint8_t, kSize>& bytes() const { return bytes_; }

  friend bool operator==(const Digest& a, const Digest& b) { return a.bytes_ == b.bytes_; }
  friend bool operator!=(const Digest& a, const Digest& b) { return !(a == b); }
  friend bool operator<(const Digest& a, const Digest& b) { return a.bytes_ < b.bytes_; }
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.bytes_);
  }
  friend std::ostream& operator<<(std::ostream& os, const Digest& d) { return os << d.ToString(); }

 private:
  explicit Digest(const std::array<uint8_t, kSize>& bytes) : bytes_(bytes) {}
  std::array<uint8_t, kSize> bytes_;
};

// Incremental sha256 (OpenSSL EVP underneath).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&&) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&&) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(absl::string_view data);
  void Update(const void* data, size_t size);
  // Returns the digest of everything passed to Update since construction or the
  // last Finish, and resets the hasher for reuse.
  Digest Finish();
  // Total bytes hashed since construction or the last Finish.
  uint64_t bytes_hashed() const { return bytes_hashed_; }

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  uint64_t bytes_hashed_ = 0;
};

}  // namespace clip

#endif  // CLIP_COMMON_DIGEST_H_
