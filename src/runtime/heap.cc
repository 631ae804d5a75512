#include "runtime/heap.h"

#include <mutex>

#include <malloc.h>

namespace rpcgate::runtime {

bool tune_heap() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    ok = ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kHeapMmapThreshold)) == 1 &&
         ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(kHeapTrimThreshold)) == 1;
  });
  return ok;
}

}  // namespace rpcgate::runtime
