#include "micro_features.h"

#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

namespace kws {

namespace {

constexpr int kSampleRate = 16000;
constexpr int kChunk = 160;  // samples per call, as pymicro-features feeds them (one 10 ms hop)
// pymicro-features turns the frontend's uint16 outputs into floats with this factor (10 / 256).
constexpr float kFeatureScale = 0.0390625f;

}  // namespace

std::vector<float> MicroFeatures(const std::vector<int16_t>& samples) {
  FrontendConfig config;
  FrontendFillConfigWithDefaults(&config);
  config.window.size_ms = 30;
  config.window.step_size_ms = 10;
  config.filterbank.num_channels = kMicroFeatureBins;
  config.filterbank.lower_band_limit = 125.0f;
  config.filterbank.upper_band_limit = 7500.0f;
  config.noise_reduction.smoothing_bits = 10;
  config.noise_reduction.even_smoothing = 0.025f;
  config.noise_reduction.odd_smoothing = 0.06f;
  config.noise_reduction.min_signal_remaining = 0.05f;
  config.pcan_gain_control.enable_pcan = 1;
  config.pcan_gain_control.strength = 0.95f;
  config.pcan_gain_control.offset = 80.0f;
  config.pcan_gain_control.gain_bits = 21;
  config.log_scale.enable_log = 1;
  config.log_scale.scale_shift = 6;
  FrontendState state;
  std::vector<float> features;
  if (!FrontendPopulateState(&config, &state, kSampleRate)) return features;
  size_t pos = 0;
  while (pos + kChunk <= samples.size()) {
    size_t read = 0;
    const FrontendOutput out = FrontendProcessSamples(&state, samples.data() + pos, kChunk, &read);
    pos += read;
    for (size_t i = 0; i < out.size; ++i) features.push_back(static_cast<float>(out.values[i]) * kFeatureScale);
  }
  FrontendFreeStateContents(&state);
  return features;
}

}  // namespace kws
