#include "epm/ept_map_cache.h"

#include <algorithm>
#include <cstring>

namespace rpcgate::epm {

// Not std::hash<std::string_view> (libstdc++'s _Hash_bytes: about 250 instructions for a
// 132-byte ept_map stub, half of a hit): one multiply and shift per 8 bytes. Collisions only cost
// time, bounded by max_entries (the table keeps each node's hash, so only equal hashes compare
// bytes), never correctness (Equal compares every byte).
std::size_t EptMapCache::Hash::operator()(const KeyView& k) const {
  constexpr std::uint64_t kMul = 0xbf58476d1ce4e5b9ull;  // splitmix64's
  auto mix = [](std::uint64_t h, std::uint64_t w) {
    h = (h ^ w) * kMul;
    return h ^ (h >> 31);
  };
  std::uint64_t extra = static_cast<std::uint64_t>(k.endian) << 32;
  for (std::size_t i = 0; i < k.host.size(); ++i)
    extra |= std::uint64_t{k.host[i]} << (8 * i);
  std::uint64_t h = mix(0x9e3779b97f4a7c15ull ^ k.request.size(), extra);
  const std::uint8_t* p = k.request.data();
  std::size_t n = k.request.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix(h, w);
  }
  if (n > 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix(h, w);
  }
  return static_cast<std::size_t>(h);
}

bool EptMapCache::Equal::operator()(const KeyView& a, const KeyView& b) const {
  return a.endian == b.endian && a.host == b.host && a.request.size() == b.request.size() &&
         (a.request.empty() ||
          std::memcmp(a.request.data(), b.request.data(), a.request.size()) == 0);
}

void EptMapCache::revalidate(std::uint64_t generation) {
  if (generation == generation_) return;
  if (!map_.empty()) ++stats_.invalidated;
  clear();
  generation_ = generation;
}

const EptMapCache::Answer* EptMapCache::find(std::uint64_t generation, common::Endian endian,
                                             const Ipv4& host,
                                             std::span<const std::uint8_t> request) {
  revalidate(generation);
  auto it = map_.find(KeyView{endian, host, request});
  if (it == map_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  ++stats_.hits;
  return &it->second;
}

void EptMapCache::insert(std::uint64_t generation, common::Endian endian, const Ipv4& host,
                         std::span<const std::uint8_t> request, Answer answer) {
  if (limits_.max_entries == 0) return;
  revalidate(generation);
  const std::size_t size = entry_bytes(request.size(), answer.stub.size());
  if (size > limits_.max_entry_bytes || size > limits_.max_bytes) {
    ++stats_.too_big;
    return;
  }
  if (auto it = map_.find(KeyView{endian, host, request}); it != map_.end()) {
    bytes_ -= entry_bytes(it->first.request.size(), it->second.stub.size());
    bytes_ += size;
    it->second = std::move(answer);
    // The replaced answer keeps its place in order_; the bounds may need room now.
  } else {
    while (!map_.empty() &&
           (map_.size() >= limits_.max_entries || bytes_ + size > limits_.max_bytes))
      evict_oldest();
    auto [ins, _] =
        map_.emplace(Key{endian, host, {request.begin(), request.end()}}, std::move(answer));
    order_.push_back(&ins->first);
    bytes_ += size;
    ++stats_.stored;
    return;
  }
  while (map_.size() > 1 && bytes_ > limits_.max_bytes)
    evict_oldest();
}

void EptMapCache::evict_oldest() {
  const Key* oldest = order_.front();
  order_.pop_front();
  auto it = map_.find(view(*oldest));
  bytes_ -= entry_bytes(it->first.request.size(), it->second.stub.size());
  map_.erase(it);
  ++stats_.evicted;
}

void EptMapCache::clear() {
  map_.clear();
  order_.clear();
  bytes_ = 0;
}

}  // namespace rpcgate::epm
