#include "ternary_conv1x1.h"

#include <algorithm>
#include <cstring>

#include "ternary_rng.h"
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/kernels/internal/common.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace kws {

namespace {

constexpr int kOptionsBytes = 28;

struct OpData {
  uint64_t key;
  int in_channels, out_channels, zeros;
  TfLiteFusedActivation activation;
  int32_t input_offset, output_offset, act_min, act_max;
  int32_t* multiplier;  // per output channel
  int32_t* shift;
  int entries_buffer;  // scratch: the nonzeros of the matrix as (row << 16 | column << 1 | negative)
  int acc_buffer;      // scratch: one accumulator per output channel
};

uint32_t Le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  auto* data = static_cast<OpData*>(context->AllocatePersistentBuffer(context, sizeof(OpData)));
  if (data == nullptr) return nullptr;
  std::memset(data, 0, sizeof(OpData));
  const auto* p = reinterpret_cast<const uint8_t*>(buffer);
  if (buffer == nullptr || length != kOptionsBytes || std::memcmp(p, "KTR1", 4) != 0) {
    data->in_channels = -1;  // Prepare reports it
    return data;
  }
  data->key = Le32(p + 4) | (static_cast<uint64_t>(Le32(p + 8)) << 32);
  data->in_channels = static_cast<int>(Le32(p + 12));
  data->out_channels = static_cast<int>(Le32(p + 16));
  data->zeros = static_cast<int>(Le32(p + 20));
  data->activation = static_cast<TfLiteFusedActivation>(static_cast<int32_t>(Le32(p + 24)));
  return data;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  auto* data = static_cast<OpData*>(node->user_data);
  if (data->in_channels < 1) {
    MicroPrintf("%s: custom options are not 28 bytes starting with KTR1", kTernary1x1OpName);
    return kTfLiteError;
  }
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, 0);
  TfLiteTensor* signs = micro_context->AllocateTempInputTensor(node, 1);
  TfLiteTensor* bias = micro_context->AllocateTempInputTensor(node, 2);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, 0);
  TF_LITE_ENSURE(context, input != nullptr && signs != nullptr && output != nullptr);
  TF_LITE_ENSURE_TYPES_EQ(context, input->type, kTfLiteInt8);
  TF_LITE_ENSURE_TYPES_EQ(context, output->type, kTfLiteInt8);
  const int n = data->in_channels * data->out_channels;
  TF_LITE_ENSURE(context, n < (1 << 24) && data->zeros >= 0 && data->zeros <= n && data->in_channels < 32768);
  TF_LITE_ENSURE_EQ(context, input->dims->data[input->dims->size - 1], data->in_channels);
  TF_LITE_ENSURE_EQ(context, output->dims->data[output->dims->size - 1], data->out_channels);
  TF_LITE_ENSURE_EQ(context, tflite::NumElements(signs), data->out_channels);
  data->multiplier = static_cast<int32_t*>(
      context->AllocatePersistentBuffer(context, sizeof(int32_t) * data->out_channels));
  data->shift = static_cast<int32_t*>(
      context->AllocatePersistentBuffer(context, sizeof(int32_t) * data->out_channels));
  TF_LITE_ENSURE(context, data->multiplier != nullptr && data->shift != nullptr);
  int32_t multiplier;
  int shift;
  TF_LITE_ENSURE_STATUS(tflite::PopulateConvolutionQuantizationParams(
      context, input, signs, bias, output, data->activation, &multiplier, &shift, &data->act_min, &data->act_max,
      data->multiplier, data->shift));
  data->input_offset = -input->params.zero_point;
  data->output_offset = output->params.zero_point;
  TF_LITE_ENSURE_STATUS(context->RequestScratchBufferInArena(context, sizeof(uint32_t) * n,
                                                             &data->entries_buffer));
  TF_LITE_ENSURE_STATUS(context->RequestScratchBufferInArena(context, sizeof(int32_t) * data->out_channels,
                                                             &data->acc_buffer));
  micro_context->DeallocateTempTfLiteTensor(input);
  micro_context->DeallocateTempTfLiteTensor(signs);
  if (bias != nullptr) micro_context->DeallocateTempTfLiteTensor(bias);
  micro_context->DeallocateTempTfLiteTensor(output);
  return kTfLiteOk;
}

// The matrix of ternary_matrix(): a permutation of the n positions whose first `zeros` are the zeros, then one
// sign per remaining position, in order. Returns the nonzeros as packed entries in `entries`.
int RegenerateMatrix(const OpData& data, uint32_t* entries) {
  const uint32_t n = static_cast<uint32_t>(data.in_channels * data.out_channels);
  Pcg64 rng(data.key);
  for (uint32_t k = 0; k < n; ++k) entries[k] = k;
  for (uint32_t k = n - 1; k > 0; --k) {
    const uint32_t j = static_cast<uint32_t>(rng.Interval(k));
    std::swap(entries[k], entries[j]);
  }
  const uint32_t out = static_cast<uint32_t>(data.out_channels);
  int count = 0;
  for (uint32_t t = static_cast<uint32_t>(data.zeros); t < n; ++t) {
    const uint32_t position = entries[t];
    const uint32_t negative = (rng.Next32() >> 31) == 0 ? 1u : 0u;  // choice([-1, 1]): index 0 is -1
    entries[count++] = ((position / out) << 16) | ((position % out) << 1) | negative;
  }
  return count;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const auto& data = *static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, 0);
  const TfLiteEvalTensor* signs = tflite::micro::GetEvalInput(context, node, 1);
  const TfLiteEvalTensor* bias = tflite::micro::GetEvalInput(context, node, 2);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  auto* entries = static_cast<uint32_t*>(context->GetScratchBuffer(context, data.entries_buffer));
  auto* acc = static_cast<int32_t*>(context->GetScratchBuffer(context, data.acc_buffer));
  const int nonzeros = RegenerateMatrix(data, entries);

  const int8_t* x = tflite::micro::GetTensorData<int8_t>(input);
  const int8_t* sign = tflite::micro::GetTensorData<int8_t>(signs);
  const int32_t* b = bias != nullptr ? tflite::micro::GetTensorData<int32_t>(bias) : nullptr;
  int8_t* y = tflite::micro::GetTensorData<int8_t>(output);
  const int positions = tflite::micro::GetTensorShape(input).FlatSize() / data.in_channels;
  for (int p = 0; p < positions; ++p, x += data.in_channels, y += data.out_channels) {
    std::memset(acc, 0, sizeof(int32_t) * data.out_channels);
    for (int e = 0; e < nonzeros; ++e) {
      const uint32_t entry = entries[e];
      const int32_t value = x[entry >> 16] + data.input_offset;
      acc[(entry >> 1) & 0x7fff] += (entry & 1u) ? -value : value;
    }
    for (int c = 0; c < data.out_channels; ++c) {
      int32_t sum = sign[c] < 0 ? -acc[c] : (sign[c] > 0 ? acc[c] : 0);
      if (b != nullptr) sum += b[c];
      sum = tflite::MultiplyByQuantizedMultiplier(sum, data.multiplier[c], data.shift[c]) + data.output_offset;
      y[c] = static_cast<int8_t>(std::min(std::max(sum, data.act_min), data.act_max));
    }
  }
  return kTfLiteOk;
}

}  // namespace

const TFLMRegistration* Register_TERNARY_1X1() {
  static const TFLMRegistration registration = tflite::micro::RegisterOp(Init, Prepare, Eval);
  return &registration;
}

}  // namespace kws
