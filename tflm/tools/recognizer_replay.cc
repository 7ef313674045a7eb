// Replays a posterior sequence through kws::Recognizer and prints its detections as JSON lines, so the Python
// detector can be checked against it on the same input.
// Usage: recognizer_replay POSTERIORS.f64 STEP_MS START_MS THRESHOLD SMOOTHING_MS REFRACTORY_MS LABEL...
// POSTERIORS.f64: steps x labels little-endian float64, row-major.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "recognizer.h"

int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr, "usage: %s POSTERIORS.f64 STEP_MS START_MS THRESHOLD SMOOTHING_MS REFRACTORY_MS LABEL...\n",
                 argv[0]);
    return 2;
  }
  const int num_labels = argc - 7;
  kws::RecognizerConfig config{std::atof(argv[4]), std::atof(argv[5]), std::atof(argv[6])};
  kws::Recognizer recognizer;
  if (!recognizer.Init(argv + 7, num_labels, std::atof(argv[2]), config, std::atof(argv[3]))) {
    std::fprintf(stderr, "recognizer: %s\n", recognizer.error());
    return 2;
  }
  std::FILE* f = std::fopen(argv[1], "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  std::vector<double> step(num_labels);
  kws::Detection d{};
  while (std::fread(step.data(), sizeof(double), num_labels, f) == static_cast<size_t>(num_labels)) {
    if (recognizer.Update(step.data(), &d)) {
      std::printf("{\"time_s\": %.17g, \"label\": \"%s\", \"score\": %.17g}\n", d.time_s, argv[7 + d.label], d.score);
    }
  }
  std::fclose(f);
  return 0;
}
