// TFLM custom operator KWS_TERNARY_1X1: the 1x1 convolution of kws_zoo's TernaryPointwise layer, with a
// {-1, 0, +1} matrix that is regenerated from its seed at every invoke instead of being stored.
//
// Inputs:  0 int8 activations [1, H, W, in]      (NHWC, as the CONV_2D it replaces)
//          1 int8 channel signs [out] (+1, -1; 0 for a column without nonzeros), carrying the CONV_2D filter's
//            per-channel quantization scales: what BatchNorm folded into the weights, apart from the matrix
//          2 int32 bias [out] (optional)
// Output:  int8 [1, H, W, out]
// Options: custom_options, 28 bytes little endian: "KTR1", uint64 key (sha256-derived from seed, shape and
//          sparsity, see kws_zoo.export.ternary_op), uint32 in, uint32 out, uint32 zeros, int32 fused activation.
// Its outputs equal TFLM's reference CONV_2D on the same matrix stored as int8 constants, bit for bit: the same
// integer sums (additions and subtractions only), the same per-channel requantization.
#ifndef KWS_ZOO_TFLM_TERNARY_CONV1X1_H_
#define KWS_ZOO_TFLM_TERNARY_CONV1X1_H_

#include "tensorflow/lite/micro/micro_common.h"

namespace kws {

constexpr char kTernary1x1OpName[] = "KWS_TERNARY_1X1";
const TFLMRegistration* Register_TERNARY_1X1();

}  // namespace kws

#endif  // KWS_ZOO_TFLM_TERNARY_CONV1X1_H_
