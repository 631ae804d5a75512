// A set of TCP/UDP ports (0-65535) with the operations the port policy needs.
//
// Stored as a 65536-bit bitmap plus a cached count: 8 KiB, O(1) membership, and set algebra in
// 1024 word operations, whatever the shape of the set. Ranges are derived on demand.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rpcgate::policy {

// An inclusive range lo..hi. Invariant (not enforced by the aggregate): lo <= hi.
struct PortRange {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  std::size_t size() const { return static_cast<std::size_t>(hi) - lo + 1; }
  bool contains(std::uint16_t p) const { return p >= lo && p <= hi; }
  // "5000-5100", or "5984" when lo == hi.
  std::string to_string() const;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

// Parses "N" or "LO-HI" (decimal, LO <= HI, both 0-65535, optional spaces around '-' and at the
// ends). This is the strict grammar used for TOML and CLI input; the registry's own grammar, with
// its diagnostics, lives in the policy resolver.
std::optional<PortRange> parse_port_range(std::string_view text);

class PortSet {
 public:
  PortSet() = default;
  static PortSet of(PortRange r) {
    PortSet s;
    s.add(r);
    return s;
  }

  // Sets every port of `r`: O(r.size()).
  void add(PortRange r);
  void add(std::uint16_t port) { add(PortRange{port, port}); }
  // The union of `ranges` (any order, overlapping or not) in O(n log n + 65536): the ranges are
  // sorted and merged as intervals first, so each port is set once however many entries cover
  // it. A registry value of 65536 entries "0-65535" would cost 2^32 bit operations through add().
  static PortSet from_ranges(std::vector<PortRange> ranges);
  void remove(PortRange r);
  bool contains(std::uint16_t port) const { return bits_.test(port); }
  std::size_t count() const { return count_; }
  bool empty() const { return count_ == 0; }

  // Maximal runs of consecutive ports, ascending.
  std::vector<PortRange> ranges() const;
  // Ports in `within` that are not in this set.
  PortSet complement_within(PortRange within) const;
  PortSet intersection(const PortSet& other) const;
  bool intersects(const PortSet& other) const { return !intersection(other).empty(); }
  // Ascending list of member ports (up to 65536 entries).
  std::vector<std::uint16_t> ports() const;
  // "5000-5100,5984" (ranges joined by `sep`); "" for the empty set.
  std::string to_string(std::string_view sep = ",") const;

  friend bool operator==(const PortSet& a, const PortSet& b) { return a.bits_ == b.bits_; }

 private:
  std::bitset<65536> bits_;
  std::size_t count_ = 0;
};

}  // namespace rpcgate::policy
