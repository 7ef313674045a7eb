// TFLM's micro frontend (tensorflow/lite/experimental/microfrontend) with the settings kws_zoo trains on
// (frontend kind "micro", the pymicro-features / ESPHome settings), producing the same float features.
#ifndef KWS_ZOO_TFLM_MICRO_FEATURES_H_
#define KWS_ZOO_TFLM_MICRO_FEATURES_H_

#include <cstdint>
#include <vector>

namespace kws {

constexpr int kMicroFeatureBins = 40;

// Every whole 10 ms frame of the audio, from a fresh frontend state: frames x 40 floats, row-major.
std::vector<float> MicroFeatures(const std::vector<int16_t>& samples);

}  // namespace kws

#endif  // KWS_ZOO_TFLM_MICRO_FEATURES_H_
