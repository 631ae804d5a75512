#include "epm/ept_map_cache.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace rpcgate::epm {

std::size_t EptMapCache::Hash::operator()(const KeyView& k) const {
  const std::size_t h = std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(k.request.data()), k.request.size()));
  std::uint64_t extra = static_cast<std::uint64_t>(k.endian) << 32;
  for (std::size_t i = 0; i < k.host.size(); ++i)
    extra |= std::uint64_t{k.host[i]} << (8 * i);
  // Fold in the 5 bytes the request does not carry (splitmix64's multiplier spreads them).
  return h ^ static_cast<std::size_t>((extra + 1) * 0x9e3779b97f4a7c15ull);
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
