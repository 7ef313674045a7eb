// kws_zoo firmware example, built for the host against TFLite Micro (tflm/CMakeLists.txt).
//
// It is what a firmware does with a model's firmware folder (model_data.cc/.h, kws_model_op_resolver.h):
// register exactly the model's ops, allocate the stated arena, quantize features, invoke, and turn the
// scores into detections with the recognizer. On a device the audio comes from a microphone; here from files:
//
//   kws_example --info                                   arena and tensor shapes, as JSON
//   kws_example --features IN.i8 --out OUT.i8            int8 input tensors in, int8 outputs out (N of each)
//   kws_example --wav IN.wav [--threshold T] [--smoothing-ms S] [--refractory-ms R]
//                                                        micro frontend -> streaming model -> recognizer:
//                                                        one JSON line per detection
//   kws_example --wav IN.wav --dump-features OUT.f32     the micro frontend's features (float32 frames x 40)
//   --arena BYTES                                        use another arena size than kArenaBytes
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kws_model_op_resolver.h"
#include "micro_features.h"
#include "model_data.h"
#include "recognizer.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_resource_variable.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "wav_reader.h"

namespace {

struct Options {
  const char* features = nullptr;
  const char* out = nullptr;
  const char* wav = nullptr;
  const char* dump_features = nullptr;
  bool info = false;
  unsigned arena = kws_model::kArenaBytes;
  kws::RecognizerConfig recognizer;
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (std::strcmp(a, "--info") == 0) {
      o->info = true;
      continue;
    }
    if (value == nullptr) return false;
    ++i;
    if (std::strcmp(a, "--features") == 0) o->features = value;
    else if (std::strcmp(a, "--out") == 0) o->out = value;
    else if (std::strcmp(a, "--wav") == 0) o->wav = value;
    else if (std::strcmp(a, "--dump-features") == 0) o->dump_features = value;
    else if (std::strcmp(a, "--arena") == 0) o->arena = static_cast<unsigned>(std::strtoul(value, nullptr, 10));
    else if (std::strcmp(a, "--threshold") == 0) o->recognizer.threshold = std::atof(value);
    else if (std::strcmp(a, "--smoothing-ms") == 0) o->recognizer.smoothing_ms = std::atof(value);
    else if (std::strcmp(a, "--refractory-ms") == 0) o->recognizer.refractory_ms = std::atof(value);
    else return false;
  }
  return o->info || (o->features && o->out) || o->wav;
}

// float -> int8 as TFLite's QUANTIZE op and kws_zoo.device.quant.quantize: float32 division, round half away
// from zero, saturate.
int8_t Quantize(float value, float scale, int zero_point) {
  const float v = value / scale;
  const float r = v < 0 ? -std::floor(-v + 0.5f) : std::floor(v + 0.5f);
  const float q = r + static_cast<float>(zero_point);
  return static_cast<int8_t>(q < -128.0f ? -128 : (q > 127.0f ? 127 : static_cast<int>(q)));
}

class Model {
 public:
  explicit Model(unsigned arena_bytes) : arena_(arena_bytes + 16) {}

  // False, with the reason on stderr, if the model cannot run (schema, ops or arena).
  bool Setup() {
    const tflite::Model* model = tflite::GetModel(kws_model::kModelData);
    if (model->version() != TFLITE_SCHEMA_VERSION) {
      std::fprintf(stderr, "error: model schema %u, this TFLM reads %d\n", static_cast<unsigned>(model->version()),
                   TFLITE_SCHEMA_VERSION);
      return false;
    }
    if (kws_model_register_ops(resolver_) != kTfLiteOk) {
      std::fprintf(stderr, "error: registering the model's ops failed\n");
      return false;
    }
    // The arena starts 16-byte aligned, as a firmware's `alignas(16) uint8_t arena[kArenaBytes]`. A streaming
    // model keeps its state in resource variables, allocated from the same arena.
    uint8_t* base = arena_.data() + (16 - reinterpret_cast<uintptr_t>(arena_.data()) % 16) % 16;
    tflite::MicroAllocator* allocator = tflite::MicroAllocator::Create(base, arena_.size() - 16);
    tflite::MicroResourceVariables* variables =
        kws_model::kNumResourceVariables > 0 && allocator != nullptr
            ? tflite::MicroResourceVariables::Create(allocator, kws_model::kNumResourceVariables)
            : nullptr;
    if (allocator == nullptr || (kws_model::kNumResourceVariables > 0 && variables == nullptr)) {
      std::fprintf(stderr, "error: AllocateTensors failed with an arena of %zu bytes (the model needs %u)\n",
                   arena_.size() - 16, kws_model::kArenaBytesMeasured);
      return false;
    }
    interpreter_ = new (interpreter_storage_) tflite::MicroInterpreter(model, resolver_, allocator, variables);
    if (interpreter_->AllocateTensors() != kTfLiteOk) {
      std::fprintf(stderr, "error: AllocateTensors failed with an arena of %zu bytes (the model needs %u)\n",
                   arena_.size() - 16, kws_model::kArenaBytesMeasured);
      return false;
    }
    return true;
  }

  tflite::MicroInterpreter& interpreter() { return *interpreter_; }

 private:
  std::vector<uint8_t> arena_;
  kws_model_op_resolver_t resolver_;
  alignas(tflite::MicroInterpreter) unsigned char interpreter_storage_[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interpreter_ = nullptr;
};

int Info(Model& model) {
  TfLiteTensor* in = model.interpreter().input(0);
  std::printf("{\"arena_used_bytes\": %zu, \"input_bytes\": %zu, \"output_bytes\": %zu, \"labels\": %d}\n",
              model.interpreter().arena_used_bytes(), in->bytes, model.interpreter().output(0)->bytes,
              kws_model::kNumLabels);
  return 0;
}

// Raw int8 input tensors in, raw int8 output tensors out: the bit-exact comparison with the Python interpreter.
int RunFeatures(Model& model, const Options& o) {
  std::FILE* in = std::fopen(o.features, "rb");
  std::FILE* out = std::fopen(o.out, "wb");
  if (in == nullptr || out == nullptr) {
    std::fprintf(stderr, "error: cannot open %s or %s\n", o.features, o.out);
    return 2;
  }
  TfLiteTensor* input = model.interpreter().input(0);
  const TfLiteTensor* output = model.interpreter().output(0);
  int n = 0;
  while (std::fread(input->data.int8, 1, input->bytes, in) == input->bytes) {
    if (model.interpreter().Invoke() != kTfLiteOk) {
      std::fprintf(stderr, "error: Invoke failed on example %d\n", n);
      return 1;
    }
    std::fwrite(output->data.int8, 1, output->bytes, out);
    ++n;
  }
  std::fclose(in);
  std::fclose(out);
  std::fprintf(stderr, "%d examples\n", n);
  return 0;
}

int RunWav(Model& model, const Options& o) {
  std::vector<int16_t> samples;
  int rate = 0;
  const char* problem = kws::ReadWav16(o.wav, &samples, &rate);
  if (problem != nullptr || rate != kws_model::kSampleRate) {
    std::fprintf(stderr, "error: %s: %s\n", o.wav, problem ? problem : "sample rate is not the model's");
    return 2;
  }
  // kws_zoo reads WAVs as float in [-1, 1) and hands the frontend int16(x * 32767) (MicroFrontendStream): the same
  // samples here, so features and detections match `kws-zoo stream` bit for bit.
  for (int16_t& s : samples) s = static_cast<int16_t>(static_cast<float>(s) * (1.0f / 32768.0f) * 32767.0f);
  const std::vector<float> features = kws::MicroFeatures(samples);
  const int frames = static_cast<int>(features.size()) / kws::kMicroFeatureBins;
  if (o.dump_features != nullptr) {
    std::FILE* f = std::fopen(o.dump_features, "wb");
    if (f == nullptr) return 2;
    std::fwrite(features.data(), sizeof(float), features.size(), f);
    std::fclose(f);
    return 0;
  }
  if (std::strcmp(kws_model::kFrontendKind, "micro") != 0) {
    std::fprintf(stderr, "error: --wav needs a model trained on the micro frontend (this one: %s)\n",
                 kws_model::kFrontendKind);
    return 2;
  }
  if (!kws_model::kIsStreaming) {
    std::fprintf(stderr, "error: --wav detection needs a streaming model (its firmware_stream folder)\n");
    return 2;
  }
  const int per_step = kws_model::kFramesPerStep;
  const double step_ms = per_step * kws_model::kHopMs;
  // As kws_zoo's Streamer: the first outputs see the zero initial state until a whole window has passed.
  const int warmup = (kws_model::kWindowFrames + per_step - 1) / per_step - 1;
  const double start_ms = (kws_model::kWindowMs - kws_model::kHopMs) + warmup * step_ms;
  kws::Recognizer recognizer;
  if (!recognizer.Init(kws_model::kLabels, kws_model::kNumLabels, step_ms, o.recognizer, start_ms)) {
    std::fprintf(stderr, "error: recognizer: %s\n", recognizer.error());
    return 2;
  }
  TfLiteTensor* input = model.interpreter().input(0);
  const TfLiteTensor* output = model.interpreter().output(0);
  kws::Detection d{};
  for (int step = 0; (step + 1) * per_step <= frames; ++step) {
    const float* x = features.data() + static_cast<size_t>(step) * per_step * kws::kMicroFeatureBins;
    for (int i = 0; i < per_step * kws::kMicroFeatureBins; ++i) {
      input->data.int8[i] = Quantize(x[i], kws_model::kInputScale, kws_model::kInputZeroPoint);
    }
    if (model.interpreter().Invoke() != kTfLiteOk) {
      std::fprintf(stderr, "error: Invoke failed at step %d\n", step);
      return 1;
    }
    if (step < warmup) continue;
    if (recognizer.UpdateInt8(output->data.int8, kws_model::kOutputScale, kws_model::kOutputZeroPoint, &d)) {
      std::printf("{\"time_s\": %.17g, \"label\": \"%s\", \"score\": %.17g}\n", d.time_s,
                  kws_model::kLabels[d.label], d.score);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    std::fprintf(stderr, "usage: %s --info | --features IN.i8 --out OUT.i8 | --wav IN.wav [--dump-features F] "
                         "[--threshold T] [--smoothing-ms S] [--refractory-ms R] [--arena BYTES]\n", argv[0]);
    return 2;
  }
  static Model model(options.arena);
  if (!model.Setup()) return 3;
  if (options.info) return Info(model);
  if (options.features != nullptr) return RunFeatures(model, options);
  return RunWav(model, options);
}
