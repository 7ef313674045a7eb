// Unit tests of kws::Recognizer (no TFLM, no test framework: each check prints what failed; exit 1 if any did).
#include <cmath>
#include <cstdio>

#include "recognizer.h"

namespace {

int failures = 0;

#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                    \
    }                                                                \
  } while (0)

const char* const kLabels[] = {"_silence_", "_unknown_", "yes", "no"};

void Fill(double* p, double silence, double unknown, double yes, double no) {
  p[0] = silence, p[1] = unknown, p[2] = yes, p[3] = no;
}

void TestRejectsBadSettings() {
  kws::Recognizer r;
  kws::RecognizerConfig config;
  CHECK(!r.Init(kLabels, 0, 10.0, config));
  CHECK(!r.Init(kLabels, 4, 0.0, config));
  config.threshold = 1.5;
  CHECK(!r.Init(kLabels, 4, 10.0, config));
  config.threshold = 0.5;
  CHECK(!r.Init(kLabels, 2, 10.0, config));  // only _silence_ and _unknown_: nothing could fire
  CHECK(r.Init(kLabels, 4, 10.0, config) && r.error() == nullptr);
  double p[4];
  Fill(p, 0, 0, 1, 0);
  kws::Recognizer fresh;
  CHECK(!fresh.Update(p, nullptr) && fresh.error() != nullptr);  // not initialised: never fires
}

void TestSmoothingThresholdAndTime() {
  kws::Recognizer r;
  kws::RecognizerConfig config{0.5, 30.0, 1000.0};  // 3 steps of 10 ms
  CHECK(r.Init(kLabels, 4, 10.0, config, 20.0));
  double p[4];
  kws::Detection d{};
  Fill(p, 1, 0, 0, 0);
  CHECK(!r.Update(p, &d));
  CHECK(!r.Update(p, &d));
  Fill(p, 0, 0, 1, 0);  // "yes": mean over 3 steps 1/3, then 2/3
  CHECK(!r.Update(p, &d));
  CHECK(r.Update(p, &d));
  CHECK(d.label == 2 && std::fabs(d.score - 2.0 / 3.0) < 1e-15);
  CHECK(std::fabs(d.time_s - (20.0 + 4 * 10.0) / 1000.0) < 1e-15);
}

void TestNonKeywordsNeverFire() {
  kws::Recognizer r;
  CHECK(r.Init(kLabels, 4, 10.0, kws::RecognizerConfig{0.5, 0.0, 0.0}));
  double p[4];
  Fill(p, 0.0, 0.99, 0.005, 0.005);
  for (int i = 0; i < 50; ++i) CHECK(!r.Update(p, nullptr));
}

void TestRefractoryPeriod() {
  kws::Recognizer r;
  CHECK(r.Init(kLabels, 4, 100.0, kws::RecognizerConfig{0.5, 0.0, 300.0}));
  double p[4];
  Fill(p, 0, 0, 0, 1);
  int fired = 0;
  for (int i = 0; i < 10; ++i) fired += r.Update(p, nullptr) ? 1 : 0;
  CHECK(fired == 4);  // steps 1, 4, 7, 10: 300 ms apart
  r.Reset();
  CHECK(r.Update(p, nullptr));  // a reset stream fires at once
}

void TestResultsRingBuffer() {
  kws::Recognizer r;
  CHECK(r.Init(kLabels, 4, 10.0, kws::RecognizerConfig{0.5, 0.0, 0.0}));
  double p[4];
  Fill(p, 0, 0, 1, 0);
  for (int i = 0; i < kws::kResultCapacity + 3; ++i) CHECK(r.Update(p, nullptr));
  CHECK(r.num_results() == kws::kResultCapacity);
  CHECK(std::fabs(r.result(0).time_s - 0.04) < 1e-12);  // the three oldest were overwritten
  CHECK(std::fabs(r.result(kws::kResultCapacity - 1).time_s - 0.19) < 1e-12);
}

void TestSoftmaxInt8() {
  const int8_t scores[4] = {-128, 0, 10, 127};
  double p[4];
  kws::SoftmaxInt8(scores, 4, 0.1f, -5, p);
  double sum = 0;
  for (double v : p) sum += v;
  CHECK(std::fabs(sum - 1.0) < 1e-12 && p[3] > p[2] && p[2] > p[1] && p[1] > p[0]);
  CHECK(std::fabs(p[2] / p[1] - std::exp(static_cast<double>(1.0f * 0.1f * 10))) < 1e-6);
}

}  // namespace

int main() {
  TestRejectsBadSettings();
  TestSmoothingThresholdAndTime();
  TestNonKeywordsNeverFire();
  TestRefractoryPeriod();
  TestResultsRingBuffer();
  TestSoftmaxInt8();
  std::printf(failures ? "recognizer_test: %d check(s) failed\n" : "recognizer_test: all checks passed\n", failures);
  return failures ? 1 : 0;
}
