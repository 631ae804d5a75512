// glibc's heap settings for a process that moves RPC stubs of tens of KiB to a few MiB.
//
// Why: with glibc's defaults, free() gives the top of the heap back to the system whenever more
// than M_TRIM_THRESHOLD (128 KiB, moved by the dynamic mmap threshold) is free there. A server
// that reassembles a 64 KiB request, answers 64 KiB and frees both does that on every call: one
// brk() to shrink the heap, one to grow it again at the next call, and a page fault for each of
// the ~50 pages the next call touches. Measured with rpcgate-echo (EchoData 64 KiB, 16
// connections): half its CPU went there, and it answered 8-12k calls/s against 20-26k with the
// settings below.
//
// What tune_heap() sets (once per process; later calls do nothing):
//  * M_TRIM_THRESHOLD = kHeapTrimThreshold: free() no longer trims below this much free memory
//    at the top. A process that wants its memory back after a burst calls malloc_trim(0) itself,
//    as runtime::Server does (server.h: after kTrimAfterReleasedBytes of released reassembly
//    memory, at most once per kTrimInterval), so at most this much more stays mapped than a
//    per-free trim would leave.
//  * M_MMAP_THRESHOLD = kHeapMmapThreshold: blocks up to the default stub cap (4 MiB) come from
//    the heap, not from an mmap() and munmap() (with its page faults) per call.
// Setting either also turns off glibc's dynamic threshold, so both are set together.
//
// Process-wide: runtime::Server calls it unless ServerOptions::tune_heap is false; tools that
// are not servers (rpcgate-bench) call it themselves.
#pragma once

#include <cstddef>

namespace rpcgate::runtime {

inline constexpr std::size_t kHeapTrimThreshold = 16u << 20;
inline constexpr std::size_t kHeapMmapThreshold = 8u << 20;

// True when the settings are in effect (set now or by an earlier call); false if glibc refused
// them (they are then left as they were).
bool tune_heap();

}  // namespace rpcgate::runtime
