#include "common/digest.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace clip {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // Uppercase is not canonical in OCI digests and is rejected.
}

}  // namespace

Digest::Digest() : Digest(Of("")) {}

absl::StatusOr<Digest> Digest::ParseHex(absl::string_view hex) {
  if (hex.size() != 2 * kSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("sha256 hex must be 64 characters, got ", hex.size()));
  }
  std::array<uint8_t, kSize> bytes;
  for (size_t i = 0; i < kSize; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError("sha256 hex must be lowercase [0-9a-f]");
    }
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return Digest(bytes);
}

absl::StatusOr<Digest> Digest::Parse(absl::string_view text) {
  size_t colon = text.find(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError("digest must be <algorithm>:<hex>");
  }
  if (!absl::StartsWith(text, kAlgorithmPrefix)) {
    return absl::UnimplementedError(absl::StrCat("unsupported digest algorithm: ",
                                                 text.substr(0, std::min<size_t>(colon, 16))));
  }
  return ParseHex(text.substr(kAlgorithmPrefix.size()));
}

Digest Digest::FromBytes(const std::array<uint8_t, kSize>& bytes) { return Digest(bytes); }

Digest Digest::Of(absl::string_view data) {
  Sha256Hasher h;
  h.Update(data);
  return h.Finish();
}

std::string Digest::Hex() const {
  std::string out(2 * kSize, '0');
  for (size_t i = 0; i < kSize; ++i) {
    out[2 * i] = kHexDigits[bytes_[i] >> 4];
    out[2 * i + 1] = kHexDigits[bytes_[i] & 0xf];
  }
  return out;
}

std::string Digest::ToString() const { return absl::StrCat(kAlgorithmPrefix, Hex()); }

struct Sha256Hasher::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256Hasher::Sha256Hasher() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  // Allocation or init failure of a built-in digest means OpenSSL itself is broken.
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) abort();
}

Sha256Hasher::~Sha256Hasher() = default;
Sha256Hasher::Sha256Hasher(Sha256Hasher&&) noexcept = default;
Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&&) noexcept = default;

void Sha256Hasher::Update(const void* data, size_t size) {
  if (size == 0) return;
  if (EVP_DigestUpdate(ctx_->md, data, size) != 1) abort();
  bytes_hashed_ += size;
}

void Sha256Hasher::Update(absl::string_view data) { Update(data.data(), data.size()); }

Digest Sha256Hasher::Finish() {
  std::array<uint8_t, Digest::kSize> out;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out.data(), &len) != 1 || len != Digest::kSize) abort();
  if (EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) abort();
  bytes_hashed_ = 0;
  return Digest::FromBytes(out);
}

}  // namespace clip
