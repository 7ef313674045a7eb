#include "wav_reader.h"

#include <cstdio>
#include <cstring>

namespace kws {

namespace {

uint32_t Le32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t Le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

const char* ReadWav16(const char* path, std::vector<int16_t>* samples, int* sample_rate) {
  std::FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return "cannot open";
  unsigned char header[12];
  const char* problem = "not a RIFF/WAVE file";
  bool have_format = false;
  if (std::fread(header, 1, 12, f) == 12 && std::memcmp(header, "RIFF", 4) == 0 &&
      std::memcmp(header + 8, "WAVE", 4) == 0) {
    problem = "no data chunk";
    unsigned char chunk[8];
    while (std::fread(chunk, 1, 8, f) == 8) {
      const uint32_t size = Le32(chunk + 4);
      if (std::memcmp(chunk, "fmt ", 4) == 0) {
        unsigned char fmt[16];
        if (size < 16 || std::fread(fmt, 1, 16, f) != 16) { problem = "short fmt chunk"; break; }
        std::fseek(f, static_cast<long>(size - 16 + (size & 1)), SEEK_CUR);
        if (Le16(fmt) != 1 || Le16(fmt + 2) != 1 || Le16(fmt + 14) != 16) {
          problem = "not 16-bit PCM mono";
          break;
        }
        *sample_rate = static_cast<int>(Le32(fmt + 4));
        have_format = true;
      } else if (std::memcmp(chunk, "data", 4) == 0) {
        if (!have_format) { problem = "data before fmt chunk"; break; }
        samples->resize(size / 2);
        const size_t got = std::fread(samples->data(), 2, samples->size(), f);  // little-endian host assumed
        samples->resize(got);
        problem = nullptr;
        break;
      } else {
        std::fseek(f, static_cast<long>(size + (size & 1)), SEEK_CUR);
      }
    }
  }
  std::fclose(f);
  return problem;
}

}  // namespace kws
