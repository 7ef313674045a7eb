#include "ternary_rng.h"

namespace kws {

namespace {

// SeedSequence constants (numpy/random/bit_generator.pyx).
constexpr uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875, kInitB = 0x8b51f9dd, kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd, kMixMultR = 0x4973f715;
constexpr int kPoolSize = 4;

uint32_t HashMix(uint32_t value, uint32_t* hash_const) {
  value ^= *hash_const;
  *hash_const *= kMultA;
  value *= *hash_const;
  return value ^ (value >> 16);
}

uint32_t Mix(uint32_t x, uint32_t y) {
  uint32_t result = kMixMultL * x - kMixMultR * y;
  return result ^ (result >> 16);
}

// SeedSequence(seed).generate_state(4, uint64): the entropy is the seed's 32-bit words, low first.
void SeedState(uint64_t seed, uint64_t out[4]) {
  uint32_t entropy[2];
  int words = 0;
  for (uint64_t n = seed; n > 0; n >>= 32) entropy[words++] = static_cast<uint32_t>(n);
  if (words == 0) entropy[words++] = 0;
  uint32_t pool[kPoolSize];
  uint32_t hash_const = kInitA;
  for (int i = 0; i < kPoolSize; ++i) pool[i] = HashMix(i < words ? entropy[i] : 0, &hash_const);
  for (int src = 0; src < kPoolSize; ++src) {
    for (int dst = 0; dst < kPoolSize; ++dst) {
      if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src], &hash_const));
    }
  }
  uint32_t state[8];
  uint32_t hash_b = kInitB;
  for (int i = 0; i < 8; ++i) {
    uint32_t v = pool[i % kPoolSize] ^ hash_b;
    hash_b *= kMultB;
    v *= hash_b;
    state[i] = v ^ (v >> 16);
  }
  for (int i = 0; i < 4; ++i) out[i] = state[2 * i] | (static_cast<uint64_t>(state[2 * i + 1]) << 32);
}

// 64 x 64 -> 128 bits from 32-bit halves.
void MulFull(uint64_t a, uint64_t b, uint64_t* hi, uint64_t* lo) {
  const uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32, b_lo = b & 0xffffffffu, b_hi = b >> 32;
  const uint64_t p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
  const uint64_t middle = (p0 >> 32) + (p1 & 0xffffffffu) + (p2 & 0xffffffffu);
  *lo = (middle << 32) | (p0 & 0xffffffffu);
  *hi = p3 + (p1 >> 32) + (p2 >> 32) + (middle >> 32);
}

}  // namespace

Pcg64::U128 Pcg64::Mul(U128 a, U128 b) {
  U128 r;
  MulFull(a.lo, b.lo, &r.hi, &r.lo);
  r.hi += a.lo * b.hi + a.hi * b.lo;
  return r;
}

Pcg64::U128 Pcg64::Add(U128 a, U128 b) {
  U128 r{a.hi + b.hi, a.lo + b.lo};
  if (r.lo < a.lo) ++r.hi;
  return r;
}

void Pcg64::Step() {
  static constexpr U128 kMultiplier{2549297995355413924ULL, 4865540595714422341ULL};
  state_ = Add(Mul(state_, kMultiplier), inc_);
}

Pcg64::Pcg64(uint64_t seed) {
  uint64_t v[4];
  SeedState(seed, v);
  // pcg64_set_seed: state from words 0-1, increment from words 2-3 (high word first), made odd.
  inc_ = U128{(v[2] << 1) | (v[3] >> 63), (v[3] << 1) | 1u};
  state_ = U128{0, 0};
  Step();
  state_ = Add(state_, U128{v[0], v[1]});
  Step();
}

uint64_t Pcg64::Next64() {
  Step();  // XSL-RR output of the new state
  const uint64_t x = state_.hi ^ state_.lo;
  const unsigned rot = static_cast<unsigned>(state_.hi >> 58);
  return (x >> rot) | (x << ((64 - rot) & 63));
}

uint32_t Pcg64::Next32() {
  if (has_uint32_) {
    has_uint32_ = false;
    return uinteger_;
  }
  const uint64_t next = Next64();
  has_uint32_ = true;
  uinteger_ = static_cast<uint32_t>(next >> 32);
  return static_cast<uint32_t>(next);
}

uint64_t Pcg64::Interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int s = 1; s <= 32; s *= 2) mask |= mask >> s;
  uint64_t value;
  if (max <= 0xffffffffu) {
    while ((value = (Next32() & mask)) > max) {
    }
  } else {
    while ((value = (Next64() & mask)) > max) {
    }
  }
  return value;
}

}  // namespace kws
