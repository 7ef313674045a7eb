// Prints the {-1, 0, +1} matrix kws::Pcg64 regenerates for a key, as the TFLM kernel KWS_TERNARY_1X1 does, one
// row (input channel) per line, so the Python layer's matrix can be compared with it.
// Usage: ternary_matrix KEY IN OUT ZEROS
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ternary_rng.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s KEY IN OUT ZEROS\n", argv[0]);
    return 2;
  }
  const uint64_t key = std::strtoull(argv[1], nullptr, 10);
  const uint32_t in = std::strtoul(argv[2], nullptr, 10), out = std::strtoul(argv[3], nullptr, 10);
  const uint32_t zeros = std::strtoul(argv[4], nullptr, 10), n = in * out;
  kws::Pcg64 rng(key);
  std::vector<uint32_t> perm(n);
  for (uint32_t k = 0; k < n; ++k) perm[k] = k;
  for (uint32_t k = n - 1; k > 0 && n > 0; --k) {
    const uint32_t j = static_cast<uint32_t>(rng.Interval(k));
    const uint32_t t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
  }
  std::vector<int> matrix(n, 0);
  for (uint32_t t = zeros; t < n; ++t) matrix[perm[t]] = (rng.Next32() >> 31) ? 1 : -1;
  for (uint32_t i = 0; i < in; ++i) {
    for (uint32_t c = 0; c < out; ++c) std::printf(c ? " %d" : "%d", matrix[i * out + c]);
    std::printf("\n");
  }
  return 0;
}
