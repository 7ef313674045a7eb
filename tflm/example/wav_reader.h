// A 16-bit PCM mono WAV reader for the host example (a device reads its microphone instead).
#ifndef KWS_ZOO_TFLM_WAV_READER_H_
#define KWS_ZOO_TFLM_WAV_READER_H_

#include <cstdint>
#include <vector>

namespace kws {

// Returns nullptr on success, else what is wrong with the file.
const char* ReadWav16(const char* path, std::vector<int16_t>* samples, int* sample_rate);

}  // namespace kws

#endif  // KWS_ZOO_TFLM_WAV_READER_H_
