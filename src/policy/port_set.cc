#include "policy/port_set.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace rpcgate::policy {

std::string PortRange::to_string() const {
  if (lo == hi) return std::to_string(lo);
  return std::to_string(lo) + "-" + std::to_string(hi);
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  s = trim(s);
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}
}  // namespace

std::optional<PortRange> parse_port_range(std::string_view text) {
  text = trim(text);
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    auto p = parse_port(text);
    if (!p) return std::nullopt;
    return PortRange{*p, *p};
  }
  auto lo = parse_port(text.substr(0, dash));
  auto hi = parse_port(text.substr(dash + 1));
  if (!lo || !hi || *lo > *hi) return std::nullopt;
  return PortRange{*lo, *hi};
}

void PortSet::add(PortRange r) {
  for (std::size_t p = r.lo; p <= r.hi; ++p) {
    if (!bits_.test(p)) {
      bits_.set(p);
      ++count_;
    }
  }
}

PortSet PortSet::from_ranges(std::vector<PortRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const PortRange& a, const PortRange& b) { return a.lo < b.lo; });
  PortSet out;
  std::optional<PortRange> run;
  for (const auto& r : ranges) {
    if (run && r.lo <= static_cast<std::size_t>(run->hi) + 1) {
      run->hi = std::max(run->hi, r.hi);
      continue;
    }
    if (run) out.add(*run);
    run = r;
  }
  if (run) out.add(*run);
  return out;
}

void PortSet::remove(PortRange r) {
  for (std::size_t p = r.lo; p <= r.hi; ++p) {
    if (bits_.test(p)) {
      bits_.reset(p);
      --count_;
    }
  }
}

std::vector<PortRange> PortSet::ranges() const {
  std::vector<PortRange> out;
  std::size_t p = 0;
  while (p < 65536) {
    if (!bits_.test(p)) {
      ++p;
      continue;
    }
    const std::size_t lo = p;
    while (p < 65536 && bits_.test(p))
      ++p;
    out.push_back({static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(p - 1)});
  }
  return out;
}

PortSet PortSet::complement_within(PortRange within) const {
  PortSet out = PortSet::of(within);
  out.bits_ &= ~bits_;
  out.count_ = out.bits_.count();
  return out;
}

PortSet PortSet::intersection(const PortSet& other) const {
  PortSet out;
  out.bits_ = bits_ & other.bits_;
  out.count_ = out.bits_.count();
  return out;
}

std::vector<std::uint16_t> PortSet::ports() const {
  std::vector<std::uint16_t> out;
  out.reserve(count_);
  for (std::size_t p = 0; p < 65536; ++p) {
    if (bits_.test(p)) out.push_back(static_cast<std::uint16_t>(p));
  }
  return out;
}

std::string PortSet::to_string(std::string_view sep) const {
  std::string out;
  for (const auto& r : ranges()) {
    if (!out.empty()) out += sep;
    out += r.to_string();
  }
  return out;
}

}  // namespace rpcgate::policy
