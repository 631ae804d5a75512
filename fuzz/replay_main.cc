// Replay driver for fuzz targets outside the libFuzzer build: runs LLVMFuzzerTestOneInput over
// every file named on the command line or found (non-recursively) in a named directory. ctest
// runs it over fuzz/corpus/<target>/ so seeds and crash reproducers are regression tests.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
int replay_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return 1;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  int count = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (!entry.is_regular_file()) continue;
        if (replay_file(entry.path()) != 0) return 1;
        ++count;
      }
    } else {
      if (replay_file(arg) != 0) return 1;
      ++count;
    }
  }
  LLVMFuzzerTestOneInput(nullptr, 0);  // the empty input is always a case
  std::printf("replayed %d inputs\n", count);
  return 0;
}
