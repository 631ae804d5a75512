// A bounded cache of encoded ept_map answers, so that the endpoint mapper's hot path - the same
// client asking the same question again and again (every RPC client maps before it binds;
// rpcgate-bench epm-map) - costs a hash and a memcmp instead of decode, tower scan, match, render
// and encode (about 5,000 instructions and 8 allocations per call, bench/profile_epmd.sh).
//
// What an answer depends on, and so the key: the request stub's bytes (object, map_tower,
// entry_handle, max_towers, and any ignored trailing bytes), its byte order (the answer is encoded
// in it), and the host substituted into wildcard tower floors (EpmService::host_for: the
// configured advertised address or the address the caller reached the EPM on). Everything else
// it depends on is the endpoint map itself, which `generation` stands for (EndpointDb::
// generation(): bumped by every change), and EpmService's configuration, fixed for the cache's
// life. Answers that depend on or create per-connection state - a request with a non-NULL
// entry_handle, an answer carrying a context handle (more results follow) - must never be
// stored: the caller (EpmService::ept_map) decides, this class only stores bytes.
//
// Invalidation: find() and insert() with a generation other than the one the stored answers were
// computed under clear the cache first, so a change to the map is visible in the very next
// ept_map.
//
// Bounds (EptMapCacheLimits): at most max_entries answers and max_bytes of request + answer
// bytes; an answer bigger than max_entry_bytes is not stored; to make room the oldest answers
// (first stored) are evicted. A client sending many distinct requests only makes the cache
// churn: it never grows past its bounds, and every answer stays correct (a miss computes it).
//
// Cost: find() does not allocate; insert() allocates the stored copies. Not thread-safe (one
// owner thread, as EpmService).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/bytes.h"
#include "epm/endpoint_db.h"

namespace rpcgate::epm {

struct EptMapCacheLimits {
  // 256 answers cover every interface a host registers many times over; 256 KiB bounds the memory
  // whatever the answers' sizes (a typical request is about 100 bytes, an answer 100-200).
  std::size_t max_entries = 256;        // 0 disables the cache
  std::size_t max_bytes = 256 * 1024;   // request + answer bytes of all entries
  std::size_t max_entry_bytes = 16384;  // request + answer bytes of one entry; larger: not stored
};

class EptMapCache {
 public:
  // A stored answer: the response stub and what EpmService replays on a hit (its statistics and
  // trailing-bytes callback see a hit as they see a computed answer).
  struct Answer {
    std::vector<std::uint8_t> stub;  // the encoded EptMapResponse, in the request's byte order
    std::uint32_t status = 0;        // the response's status
    std::size_t trailing_bytes = 0;  // ignored bytes after the request's last [in] parameter
  };
  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t stored = 0;
    std::uint64_t evicted = 0;      // to make room (bounds)
    std::uint64_t invalidated = 0;  // clears because the map changed
    std::uint64_t too_big = 0;      // answers not stored: over max_entry_bytes
  };

  explicit EptMapCache(EptMapCacheLimits limits = {}) : limits_(limits) {}

  // The answer stored for exactly this request (same bytes, byte order and host) under
  // `generation`, or nullptr. Valid until the next insert() or a find() with another generation.
  const Answer* find(std::uint64_t generation, common::Endian endian, const Ipv4& host,
                     std::span<const std::uint8_t> request);

  // Stores `answer` for this request, computed under `generation` (replacing one stored for the
  // same request), evicting the oldest answers until the bounds hold. Does nothing when the cache
  // is disabled or the entry is bigger than max_entry_bytes (or max_bytes).
  void insert(std::uint64_t generation, common::Endian endian, const Ipv4& host,
              std::span<const std::uint8_t> request, Answer answer);

  void clear();
  std::size_t size() const { return map_.size(); }
  std::size_t bytes() const { return bytes_; }
  const Stats& stats() const { return stats_; }
  const EptMapCacheLimits& limits() const { return limits_; }

 private:
  struct Key {
    common::Endian endian;
    Ipv4 host;
    std::vector<std::uint8_t> request;
  };
  // What find() looks up with: the request as given, no copy (heterogeneous lookup).
  struct KeyView {
    common::Endian endian;
    Ipv4 host;
    std::span<const std::uint8_t> request;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(const KeyView& k) const;
    std::size_t operator()(const Key& k) const { return (*this)(view(k)); }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(const KeyView& a, const KeyView& b) const;
    bool operator()(const Key& a, const Key& b) const { return (*this)(view(a), view(b)); }
    bool operator()(const KeyView& a, const Key& b) const { return (*this)(a, view(b)); }
    bool operator()(const Key& a, const KeyView& b) const { return (*this)(view(a), b); }
  };
  static KeyView view(const Key& k) { return {k.endian, k.host, k.request}; }
  static std::size_t entry_bytes(std::size_t request, std::size_t answer) {
    return request + answer;
  }
  void revalidate(std::uint64_t generation);
  void evict_oldest();

  EptMapCacheLimits limits_;
  std::unordered_map<Key, Answer, Hash, Equal> map_;
  std::deque<const Key*> order_;  // oldest first; nodes of map_ (stable addresses)
  std::size_t bytes_ = 0;
  std::uint64_t generation_ = 0;
  Stats stats_;
};

}  // namespace rpcgate::epm
