// Minimal firmware-side use of a kws_zoo export (TFLite Micro).
//
// Generated next to this file (see README.md):
//   kws_model.h / kws_model.cc   the .tflite as `kws_model[]`, `kws_model_len`, `kws_model_arena_bytes`
//   kws_model_op_resolver.h      `kws_model_op_resolver_t` + `kws_model_register_ops()`
// The feature frontend (same config as training) is the application's job; here it is a stub.

#include <cstdint>
#include <cmath>

#include "kws_model.h"
#include "kws_model_op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// The host measured kws_model_arena_bytes with reference kernels and 64-bit pointers. On a
// 32-bit MCU the bookkeeping structs are smaller, but optimized kernels (e.g. CMSIS-NN) may ask
// for scratch buffers the reference kernels do not, hence a margin; check arena_used_bytes().
constexpr unsigned int kArenaSize = kws_model_arena_bytes + 2048;
alignas(16) uint8_t tensor_arena[kArenaSize];

tflite::MicroInterpreter* interpreter = nullptr;

// Float features -> int8 exactly like TFLite's QUANTIZE op (round half away from zero).
int8_t Quantize(float value, float scale, int zero_point) {
  long q = std::lround(value / scale) + zero_point;
  return static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
}

}  // namespace

// Call once at boot. Returns false if the model cannot run (wrong schema, op or arena size).
bool KwsSetup() {
  const tflite::Model* model = tflite::GetModel(kws_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("model schema %d != supported %d", model->version(), TFLITE_SCHEMA_VERSION);
    return false;
  }
  static kws_model_op_resolver_t resolver;  // static: the interpreter keeps a reference
  if (kws_model_register_ops(resolver) != kTfLiteOk) return false;

  static tflite::MicroInterpreter static_interpreter(model, resolver, tensor_arena, kArenaSize);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    MicroPrintf("AllocateTensors failed: arena of %u bytes too small?", kArenaSize);
    return false;
  }
  MicroPrintf("arena used %u of %u bytes", static_cast<unsigned>(interpreter->arena_used_bytes()),
              kArenaSize);
  return true;
}

// features: frames*bins floats from the frontend. Returns the top-1 class index, or -1.
int KwsClassify(const float* features) {
  TfLiteTensor* input = interpreter->input(0);
  const int n = input->bytes;  // int8: one byte per element
  for (int i = 0; i < n; ++i) {
    input->data.int8[i] = Quantize(features[i], input->params.scale, input->params.zero_point);
  }
  if (interpreter->Invoke() != kTfLiteOk) return -1;

  // Outputs are int8 logits; argmax on them equals argmax on the dequantized values.
  const TfLiteTensor* output = interpreter->output(0);
  const int classes = output->dims->data[output->dims->size - 1];
  int best = 0;
  for (int c = 1; c < classes; ++c) {
    if (output->data.int8[c] > output->data.int8[best]) best = c;
  }
  return best;
}

int main() {
  if (!KwsSetup()) return 1;
  static float features[49 * 10] = {};  // replace with the frontend's output for 1 s of audio
  MicroPrintf("class %d", KwsClassify(features));
  return 0;
}
