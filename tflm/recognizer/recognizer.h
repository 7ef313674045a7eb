// Keyword recognizer: turns a stream of per-step class posteriors into detections.
//
// The same decisions as kws_zoo.evaluate.detector.Detector (Python), step for step:
//   1. each class's posterior is averaged over the last round(smoothing_ms / step_ms) steps (at least 1);
//   2. the best keyword's average (labels "_silence_" and "_unknown_" never fire) must reach the threshold;
//   3. after a detection, nothing fires for refractory_ms.
// A detection's time is the end of the audio of the step that fired: start_ms + steps * step_ms.
// No heap, no TFLM dependency: fixed capacities below, checked by Init().
#ifndef KWS_ZOO_TFLM_RECOGNIZER_H_
#define KWS_ZOO_TFLM_RECOGNIZER_H_

#include <cstdint>

namespace kws {

constexpr int kMaxLabels = 32;
constexpr int kMaxSmoothingSteps = 128;
constexpr int kResultCapacity = 16;  // the last detections, oldest overwritten first

struct RecognizerConfig {
  double threshold = 0.8;
  double smoothing_ms = 200.0;
  double refractory_ms = 1000.0;
};

struct Detection {
  double time_s;
  int label;     // index into the labels given to Init()
  double score;  // the smoothed posterior that reached the threshold
};

class Recognizer {
 public:
  // Returns false (and the reason in error()) for labels, step or config the recognizer cannot take.
  bool Init(const char* const* labels, int num_labels, double step_ms, const RecognizerConfig& config,
            double start_ms = 0.0);
  void Reset();

  // One step of posteriors (num_labels values). Returns true and fills *out when a detection fires.
  bool Update(const double* posteriors, Detection* out);
  // One step of int8 scores (the model's logits): softmax of scale * (q - zero_point), then Update.
  bool UpdateInt8(const int8_t* scores, float scale, int zero_point, Detection* out);

  // The results ring buffer: index 0 is the oldest detection still kept.
  int num_results() const { return num_results_; }
  const Detection& result(int index) const;
  const char* error() const { return error_; }

 private:
  const char* const* labels_ = nullptr;
  int num_labels_ = 0;
  bool keyword_[kMaxLabels] = {};
  double step_ms_ = 0.0, start_ms_ = 0.0;
  RecognizerConfig config_;
  int window_ = 1;
  double history_[kMaxSmoothingSteps][kMaxLabels] = {};
  int kept_ = 0, next_ = 0;  // steps in the history, and the slot the next one goes to
  long long steps_ = 0;
  bool fired_ = false;
  double last_fire_ms_ = 0.0;
  Detection results_[kResultCapacity] = {};
  int num_results_ = 0, first_result_ = 0;
  const char* error_ = "not initialised";
};

// Posteriors from int8 logits, as kws_zoo.evaluate.detector.softmax does on the dequantized values (double).
void SoftmaxInt8(const int8_t* scores, int n, float scale, int zero_point, double* out);

}  // namespace kws

#endif  // KWS_ZOO_TFLM_RECOGNIZER_H_
