#include "ndr/binding.h"

#include <array>
#include <charconv>

#include <arpa/inet.h>

namespace rpcgate::ndr {
namespace {

struct ProtseqName {
  Protseq protseq;
  std::string_view name;
};
constexpr std::array<ProtseqName, 6> kProtseqs{{
    {Protseq::kNcacnIpTcp, "ncacn_ip_tcp"},
    {Protseq::kNcadgIpUdp, "ncadg_ip_udp"},
    {Protseq::kNcacnNp, "ncacn_np"},
    {Protseq::kNcacnHttp, "ncacn_http"},
    {Protseq::kNcalrpc, "ncalrpc"},
    {Protseq::kNcacnUnixStream, "ncacn_unix_stream"},
}};

constexpr std::string_view kReserved = "@:[],";

bool is_reserved(char c) {
  return kReserved.find(c) != std::string_view::npos;
}
bool is_control(char c) {
  return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
}

// Backslashes follow the CommandLineToArgvW rule: a run of k backslashes followed by a reserved
// character (or by the end of a field, i.e. by the delimiter that ended it) stands for k / 2
// backslashes, and if k is odd the reserved character is escaped; a run followed by anything
// else is literal. So `\\HOST` and `\pipe\epmapper` read as written.
std::size_t backslash_run(std::string_view s, std::size_t i) {
  std::size_t j = i;
  while (j < s.size() && s[j] == '\\')
    ++j;
  return j - i;
}

// Finds the first unescaped `c` at or after `from`; npos if none.
std::size_t find_unescaped(std::string_view s, char c, std::size_t from = 0) {
  std::size_t i = from;
  while (i < s.size()) {
    if (s[i] == '\\') {
      const std::size_t k = backslash_run(s, i);
      const std::size_t j = i + k;
      if (j < s.size() && is_reserved(s[j]) && k % 2 == 1) {
        i = j + 1;  // escaped reserved character
      } else {
        i = j;
      }
      continue;
    }
    if (s[i] == c) return i;
    ++i;
  }
  return std::string_view::npos;
}

// Removes escapes from one field (already split at its unescaped delimiters).
std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (is_control(s[i])) return std::nullopt;
    if (s[i] != '\\') {
      out.push_back(s[i++]);
      continue;
    }
    const std::size_t k = backslash_run(s, i);
    const std::size_t j = i + k;
    if (j == s.size() || is_reserved(s[j])) {
      out.append(k / 2, '\\');
      if (k % 2 == 1) {
        if (j == s.size()) return std::nullopt;  // cannot happen after splitting; be safe
        out.push_back(s[j]);
        i = j + 1;
      } else {
        i = j;
      }
    } else {
      out.append(k, '\\');
      i = j;
    }
  }
  return out;
}

// Inverse of unescape() for a field whose delimiters are `specials`: doubles a backslash run
// that precedes a reserved character or ends the field, and escapes each special character.
std::string escape(std::string_view s, std::string_view specials) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '\\') {
      const std::size_t k = backslash_run(s, i);
      const std::size_t j = i + k;
      const bool doubled = j == s.size() || is_reserved(s[j]);
      out.append(doubled ? 2 * k : k, '\\');
      i = j;
      continue;
    }
    if (specials.find(s[i]) != std::string_view::npos) out.push_back('\\');
    out.push_back(s[i++]);
  }
  return out;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

Result<void> validate(const StringBinding& b) {
  if (is_ip_protseq(b.protseq)) {
    if (b.network_addr.find(':') != std::string::npos) {
      std::array<unsigned char, 16> buf{};
      if (inet_pton(AF_INET6, b.network_addr.c_str(), buf.data()) != 1)
        return fail(Errc::kBindingBadNetworkAddr);
    }
    if (!b.endpoint.empty()) {
      unsigned port = 0;
      const char* first = b.endpoint.data();
      const char* last = first + b.endpoint.size();
      auto [ptr, ec] = std::from_chars(first, last, port);
      if (ec != std::errc{} || ptr != last || port > 65535 || b.endpoint[0] == '+')
        return fail(Errc::kBindingBadEndpoint);
    }
  } else if (b.protseq == Protseq::kNcacnNp) {
    if (!b.endpoint.empty() && !iequals_prefix(b.endpoint, "\\pipe\\"))
      return fail(Errc::kBindingBadEndpoint);
  }
  return {};
}

}  // namespace

std::string_view to_string(Protseq p) {
  for (const auto& e : kProtseqs)
    if (e.protseq == p) return e.name;
  return "unknown";
}

std::optional<Protseq> parse_protseq(std::string_view text) {
  for (const auto& e : kProtseqs)
    if (e.name == text) return e.protseq;
  return std::nullopt;
}

bool is_ip_protseq(Protseq p) {
  return p == Protseq::kNcacnIpTcp || p == Protseq::kNcadgIpUdp || p == Protseq::kNcacnHttp;
}

Result<StringBinding> parse_binding(std::string_view text) {
  StringBinding b;
  const std::size_t colon = find_unescaped(text, ':');
  if (colon == std::string_view::npos) return fail(Errc::kBindingSyntax);
  std::string_view head = text.substr(0, colon);
  std::string_view rest = text.substr(colon + 1);

  if (const std::size_t at = find_unescaped(head, '@'); at != std::string_view::npos) {
    auto uuid = common::Uuid::parse(head.substr(0, at));
    if (!uuid) return fail(Errc::kBindingBadObjectUuid);
    b.object = *uuid;
    head = head.substr(at + 1);
  }
  auto protseq = parse_protseq(head);
  if (!protseq) return fail(Errc::kBindingUnknownProtseq);
  b.protseq = *protseq;

  const std::size_t open = find_unescaped(rest, '[');
  auto addr = unescape(rest.substr(0, open));
  if (!addr || find_unescaped(rest.substr(0, open), ']') != std::string_view::npos)
    return fail(Errc::kBindingBadNetworkAddr);
  b.network_addr = std::move(*addr);

  if (open != std::string_view::npos) {
    std::string_view inner = rest.substr(open + 1);
    const std::size_t close = find_unescaped(inner, ']');
    if (close == std::string_view::npos || close + 1 != inner.size())
      return fail(Errc::kBindingSyntax);
    inner = inner.substr(0, close);
    if (find_unescaped(inner, '[') != std::string_view::npos) return fail(Errc::kBindingSyntax);
    // Split at unescaped commas: the first item is the endpoint, the others options.
    std::size_t start = 0;
    bool first = true;
    while (true) {
      const std::size_t comma = find_unescaped(inner, ',', start);
      std::string_view item = inner.substr(start, comma - start);
      if (first) {
        if (item.starts_with("endpoint=")) item.remove_prefix(9);
        auto ep = unescape(item);
        if (!ep) return fail(Errc::kBindingBadEndpoint);
        b.endpoint = std::move(*ep);
        first = false;
      } else {
        const std::size_t eq = item.find('=');
        if (eq == std::string_view::npos || eq == 0) return fail(Errc::kBindingBadOption);
        auto key = unescape(item.substr(0, eq));
        auto value = unescape(item.substr(eq + 1));
        if (!key || !value) return fail(Errc::kBindingBadOption);
        b.options.emplace_back(std::move(*key), std::move(*value));
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  if (auto r = validate(b); !r) return std::unexpected(r.error());
  return b;
}

std::string format_binding(const StringBinding& b) {
  std::string out;
  if (b.object) out += b.object->to_string() + "@";
  out += to_string(b.protseq);
  out += ':';
  out += escape(b.network_addr, "[]");
  if (!b.endpoint.empty() || !b.options.empty()) {
    out += '[';
    // parse_binding() drops a leading `endpoint=` keyword, so repeat it for such an endpoint.
    if (b.endpoint.starts_with("endpoint=")) out += "endpoint=";
    out += escape(b.endpoint, "[],");
    for (const auto& [key, value] : b.options) {
      out += ',';
      out += escape(key, "[],");  // parse never yields a key with '='
      out += '=';
      out += escape(value, "[],");
    }
    out += ']';
  }
  return out;
}

}  // namespace rpcgate::ndr
