// The generator of kws_zoo's constant sparse ternary matrices (kws_zoo.layers.ternary_pointwise.ternary_matrix),
// ported exactly: NumPy's SeedSequence and PCG64, Generator.permutation (Fisher-Yates with masked rejection) and
// Generator.choice([-1, 1]) (Lemire's bounded integers on the top bit). The key (sha256 of seed, shape and
// sparsity) is derived once at export; this regenerates the matrix from it. Portable C++ (no __int128).
#ifndef KWS_ZOO_TFLM_TERNARY_RNG_H_
#define KWS_ZOO_TFLM_TERNARY_RNG_H_

#include <cstdint>

namespace kws {

class Pcg64 {
 public:
  explicit Pcg64(uint64_t seed);
  uint64_t Next64();
  uint32_t Next32();
  // Uniform in [0, max], as NumPy's random_interval.
  uint64_t Interval(uint64_t max);

 private:
  struct U128 {
    uint64_t hi, lo;
  };
  static U128 Mul(U128 a, U128 b);
  static U128 Add(U128 a, U128 b);
  void Step();
  U128 state_{0, 0}, inc_{0, 0};
  bool has_uint32_ = false;
  uint32_t uinteger_ = 0;
};

}  // namespace kws

#endif  // KWS_ZOO_TFLM_TERNARY_RNG_H_
