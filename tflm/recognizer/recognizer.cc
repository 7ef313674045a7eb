#include "recognizer.h"

#include <cmath>
#include <cstring>

namespace kws {

namespace {

bool IsKeyword(const char* label) {
  return std::strcmp(label, "_silence_") != 0 && std::strcmp(label, "_unknown_") != 0;
}

}  // namespace

bool Recognizer::Init(const char* const* labels, int num_labels, double step_ms, const RecognizerConfig& config,
                      double start_ms) {
  error_ = nullptr;
  if (labels == nullptr || num_labels < 1 || num_labels > kMaxLabels) {
    error_ = "need 1..kMaxLabels labels";
  } else if (!(step_ms > 0.0)) {
    error_ = "step_ms must be > 0";
  } else if (!(config.threshold > 0.0 && config.threshold <= 1.0)) {
    error_ = "threshold must be in (0, 1]";
  } else if (config.smoothing_ms < 0.0 || config.refractory_ms < 0.0) {
    error_ = "smoothing_ms and refractory_ms must be >= 0";
  }
  if (error_ != nullptr) return false;
  bool any_keyword = false;
  for (int i = 0; i < num_labels; ++i) {
    keyword_[i] = IsKeyword(labels[i]);
    any_keyword = any_keyword || keyword_[i];
  }
  if (!any_keyword) {
    error_ = "no keyword among the labels";
    return false;
  }
  // Python: max(1, int(round(smoothing_ms / step_ms))); round() there is half-to-even, as nearbyint here.
  const double steps = std::nearbyint(config.smoothing_ms / step_ms);
  if (steps > kMaxSmoothingSteps) {
    error_ = "smoothing_ms / step_ms exceeds kMaxSmoothingSteps";
    return false;
  }
  labels_ = labels;
  num_labels_ = num_labels;
  step_ms_ = step_ms;
  start_ms_ = start_ms;
  config_ = config;
  window_ = steps < 1.0 ? 1 : static_cast<int>(steps);
  Reset();
  num_results_ = first_result_ = 0;
  return true;
}

void Recognizer::Reset() {
  kept_ = next_ = 0;
  steps_ = 0;
  fired_ = false;
}

bool Recognizer::Update(const double* posteriors, Detection* out) {
  if (labels_ == nullptr) return false;
  std::memcpy(history_[next_], posteriors, sizeof(double) * num_labels_);
  next_ = (next_ + 1) % window_;
  if (kept_ < window_) ++kept_;
  ++steps_;
  const double now_ms = start_ms_ + static_cast<double>(steps_) * step_ms_;
  // The mean of the kept steps, summed oldest first (as the Python detector's mean over its deque).
  const int oldest = (next_ - kept_ + window_) % window_;
  int best = -1;
  double best_value = -1.0;
  for (int c = 0; c < num_labels_; ++c) {
    if (!keyword_[c]) continue;
    double sum = 0.0;
    for (int k = 0; k < kept_; ++k) sum += history_[(oldest + k) % window_][c];
    const double mean = sum / kept_;
    if (best < 0 || mean > best_value) {
      best = c;
      best_value = mean;
    }
  }
  if (best_value < config_.threshold) return false;
  if (fired_ && now_ms - last_fire_ms_ < config_.refractory_ms) return false;
  fired_ = true;
  last_fire_ms_ = now_ms;
  const Detection detection{now_ms / 1000.0, best, best_value};
  const int slot = (first_result_ + num_results_) % kResultCapacity;
  results_[slot] = detection;
  if (num_results_ < kResultCapacity) {
    ++num_results_;
  } else {
    first_result_ = (first_result_ + 1) % kResultCapacity;
  }
  if (out != nullptr) *out = detection;
  return true;
}

bool Recognizer::UpdateInt8(const int8_t* scores, float scale, int zero_point, Detection* out) {
  double posteriors[kMaxLabels];
  SoftmaxInt8(scores, num_labels_, scale, zero_point, posteriors);
  return Update(posteriors, out);
}

const Detection& Recognizer::result(int index) const {
  return results_[(first_result_ + index) % kResultCapacity];
}

void SoftmaxInt8(const int8_t* scores, int n, float scale, int zero_point, double* out) {
  // Dequantized as float32 (kws_zoo.device.quant.dequantize), then softmax in double with the max subtracted.
  double max_value = -HUGE_VAL;
  for (int i = 0; i < n; ++i) {
    out[i] = static_cast<double>(static_cast<float>(scores[i] - zero_point) * scale);
    if (out[i] > max_value) max_value = out[i];
  }
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    out[i] = std::exp(out[i] - max_value);
    sum += out[i];
  }
  for (int i = 0; i < n; ++i) out[i] /= sum;
}

}  // namespace kws
