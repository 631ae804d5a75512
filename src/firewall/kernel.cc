#include "firewall/kernel.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

namespace rpcgate::firewall::kernel {
namespace {

// rules.h stores IPv4 IPv4-mapped; these helpers read that form without needing rules.cc.
bool is_mapped(const Address& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; }) && a[10] == 0xff &&
         a[11] == 0xff;
}
bool cidr_v4(const Cidr& c) {
  return c.prefix >= 96 && is_mapped(c.base);
}
std::string cidr_text(const Cidr& c) {
  const unsigned bits = cidr_v4(c) ? c.prefix - 96 : c.prefix;
  return to_string(c.base) + "/" + std::to_string(bits);
}

std::string hex(std::uint32_t v) {
  char buf[16];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
  return "0x" + std::string(buf, end);
}

struct Family {
  bool v4;
  const char* nfproto;  // meta nfproto
  const char* l3;       // ip / ip6 (payload and tproxy)
  const char* suffix;   // set name suffix
};
constexpr Family kV4{true, "ipv4", "ip", "4"};
constexpr Family kV6{false, "ipv6", "ip6", "6"};

std::vector<const Cidr*> of_family(const std::vector<Cidr>& cidrs, const Family& f) {
  std::vector<const Cidr*> out;
  for (const Cidr& c : cidrs)
    if (cidr_v4(c) == f.v4) out.push_back(&c);
  return out;
}

std::string element_key(const PinholeKey& k) {
  return to_string(k.client) + " . " + to_string(k.server) + " . " + std::to_string(k.port);
}
std::string element_text(const PinholeElement& e) {
  return element_key(e.key) + " timeout " + std::to_string(e.timeout.count()) + "ms comment \"" +
         e.comment + "\"";
}

// "1d2h3m4s5ms" (nft's time format) in milliseconds.
std::optional<std::chrono::milliseconds> parse_nft_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t total = 0;
  while (!s.empty()) {
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc{} || p == s.data()) return std::nullopt;
    s.remove_prefix(static_cast<std::size_t>(p - s.data()));
    std::uint64_t unit = 0;
    if (s.starts_with("ms")) {
      unit = 1, s.remove_prefix(2);
    } else if (s.starts_with("d")) {
      unit = 86'400'000, s.remove_prefix(1);
    } else if (s.starts_with("h")) {
      unit = 3'600'000, s.remove_prefix(1);
    } else if (s.starts_with("m")) {
      unit = 60'000, s.remove_prefix(1);
    } else if (s.starts_with("s")) {
      unit = 1000, s.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    total += n * unit;
  }
  return std::chrono::milliseconds(total);
}

// The elements of one `nft list set` output: the text between "elements = {" and its "}",
// split at commas outside quotes, each "A . B . PORT [timeout T] [expires E] [comment "C"]".
std::expected<std::vector<RecoveredPinhole>, std::string> parse_set_listing(std::string_view text) {
  std::vector<RecoveredPinhole> out;
  const auto start = text.find("elements = {");
  if (start == std::string_view::npos) return out;
  std::vector<std::string> tokens;  // one element's, a quoted string is one token
  std::string token;
  auto flush_token = [&] {
    if (!token.empty()) tokens.push_back(std::move(token));
    token.clear();
  };
  auto finish_element = [&]() -> std::expected<void, std::string> {
    flush_token();
    if (tokens.empty()) return {};
    auto bad = [&] { return std::unexpected("unexpected pinhole element: " + tokens[0] + " ..."); };
    if (tokens.size() < 5 || tokens[1] != "." || tokens[3] != ".") return bad();
    RecoveredPinhole r{};
    auto client = parse_address(tokens[0]);
    auto server = parse_address(tokens[2]);
    unsigned port = 0;
    auto [p, ec] = std::from_chars(tokens[4].data(), tokens[4].data() + tokens[4].size(), port);
    if (!client || !server || ec != std::errc{} || p != tokens[4].data() + tokens[4].size() ||
        port == 0 || port > 65535)
      return bad();
    r.key = PinholeKey{*client, *server, static_cast<std::uint16_t>(port)};
    r.expires_in = kMaxTimeout;  // an element without a timeout (not ours) never expires
    for (std::size_t i = 5; i + 1 < tokens.size(); i += 2) {
      if (tokens[i] == "expires") {
        auto d = parse_nft_duration(tokens[i + 1]);
        if (!d) return bad();
        r.expires_in = *d;
      } else if (tokens[i] == "comment") {
        const std::string& c = tokens[i + 1];
        r.comment =
            c.size() >= 2 && c.front() == '"' && c.back() == '"' ? c.substr(1, c.size() - 2) : c;
      }
    }
    out.push_back(std::move(r));
    tokens.clear();
    return {};
  };
  bool quoted = false;
  for (std::size_t i = start + std::strlen("elements = {"); i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      token += ch;
      if (ch == '"') quoted = false;
    } else if (ch == '"') {
      token += ch;
      quoted = true;
    } else if (ch == ',' || ch == '}') {
      if (auto r = finish_element(); !r) return std::unexpected(r.error());
      if (ch == '}') return out;
    } else if (ch == ' ' || ch == '\t' || ch == '\n') {
      flush_token();
    } else {
      token += ch;
    }
  }
  return std::unexpected("unterminated element list in nft output");
}

// Sorted, duplicate keys removed (the last one of a key wins): a batch that names one element
// twice would fail as a whole (the second delete finds nothing).
std::vector<PinholeElement> unique_elements(std::span<const PinholeElement> elements) {
  std::map<PinholeKey, const PinholeElement*> by_key;
  for (const PinholeElement& e : elements)
    by_key[e.key] = &e;
  std::vector<PinholeElement> out;
  out.reserve(by_key.size());
  for (auto& [k, e] : by_key)
    out.push_back(*e);
  return out;
}

// "add element inet rpcgate_fwd pinholesN { a, b }" per family, for the keys of `keys`.
template <typename T, typename Text>
std::string element_commands(std::string_view verb, const std::vector<T>& items,
                             const Text& text_of) {
  std::string out;
  for (bool v4 : {true, false}) {
    std::string list;
    for (const T& item : items) {
      const PinholeKey& k = [&]() -> const PinholeKey& {
        if constexpr (std::is_same_v<T, PinholeKey>)
          return item;
        else
          return item.key;
      }();
      if (is_mapped(k.client) != v4) continue;
      list += (list.empty() ? "" : ", ") + text_of(item);
    }
    if (list.empty()) continue;
    out += std::string(verb) + " element inet " + std::string(kTableName) +
           (v4 ? " pinholes4 { " : " pinholes6 { ") + list + " }\n";
  }
  return out;
}

}  // namespace

std::string validate(const TableSpec& s) {
  if (s.dynamic_ports.empty()) return "no dynamic ports";
  for (auto [first, last] : s.dynamic_ports)
    if (first == 0 || first > last)
      return "bad dynamic port range " + std::to_string(first) + "-" + std::to_string(last);
  if (s.epm_listen_port == 0 || s.pinhole_listen_port == 0) return "listen port 0";
  if (s.epm_listen_port == s.pinhole_listen_port) return "the two listen ports are the same";
  if (s.mark == 0) return "fwmark 0";
  if (s.route_table == 0 || (s.route_table >= 253 && s.route_table <= 255))
    return "route table " + std::to_string(s.route_table) + " is the kernel's own";
  if (s.max_pinholes == 0 || s.max_pinholes > (std::size_t{1} << 31)) return "bad max_pinholes";
  for (const auto* list : {&s.clients, &s.servers})
    for (const Cidr& c : *list)
      if (c.prefix > 128 || (is_mapped(c.base) && c.prefix < 96))
        return "bad prefix length " + std::to_string(c.prefix);
  return {};
}

std::string validate(const PinholeElement& e) {
  if (is_mapped(e.key.client) != is_mapped(e.key.server))
    return "client and server of different families";
  if (e.key.port == 0) return "port 0";
  if (e.timeout < std::chrono::milliseconds(1) || e.timeout > kMaxTimeout)
    return "timeout out of range (1 ms .. 24 h)";
  if (e.comment.size() > kMaxCommentBytes) return "comment longer than 128 bytes";
  for (char c : e.comment)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
      return "comment with a character nft cannot carry unquoted";
  return {};
}

// ----------------------------------------------------------------------------------------------
// Nft

std::expected<Nft, std::string> Nft::open() {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return std::unexpected("nft_ctx_new failed");
  if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0) {
    nft_ctx_free(ctx);
    return std::unexpected("libnftables: cannot buffer output");
  }
  return Nft(ctx);
}

Nft::Nft(Nft&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
Nft& Nft::operator=(Nft&& other) noexcept {
  if (this != &other) {
    if (ctx_) nft_ctx_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}
Nft::~Nft() {
  if (ctx_) nft_ctx_free(ctx_);
}

std::expected<std::string, std::string> Nft::run(const std::string& commands, bool json) {
  nft_ctx_output_set_flags(ctx_, json ? NFT_CTX_OUTPUT_JSON : 0);
  const int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
  // Reading a buffer also rewinds it, so each call starts empty.
  std::string out = nft_ctx_get_output_buffer(ctx_);
  std::string err = nft_ctx_get_error_buffer(ctx_);
  if (rc != 0) {
    while (!err.empty() && err.back() == '\n')
      err.pop_back();
    return std::unexpected("nft: " + (err.empty() ? std::string("failed") : err));
  }
  return out;
}

std::string Nft::render(const TableSpec& s, std::span<const PinholeElement> survivors) const {
  const std::string table = "inet " + std::string(kTableName);
  const std::string mark = hex(s.mark);
  std::string out;
  // Create-if-missing then delete: the delete never fails, and the new table follows in the same
  // batch, so no packet ever sees the hook without the table.
  out += "table " + table + "\ndelete table " + table + "\ntable " + table + " {\n";

  auto cidr_set = [&](const std::string& name, const std::vector<const Cidr*>& cidrs, bool v4) {
    if (cidrs.empty()) return;
    out += "  set " + name + " { type " + (v4 ? "ipv4_addr" : "ipv6_addr") +
           "; flags interval; auto-merge; elements = { ";
    for (std::size_t i = 0; i < cidrs.size(); ++i)
      out += (i ? ", " : "") + cidr_text(*cidrs[i]);
    out += " } }\n";
  };
  for (const Family& f : {kV4, kV6}) {
    cidr_set(std::string("clients") + f.suffix, of_family(s.clients, f), f.v4);
    cidr_set(std::string("servers") + f.suffix, of_family(s.servers, f), f.v4);
  }
  out += "  set dynports { type inet_service; flags interval; auto-merge; elements = { ";
  for (std::size_t i = 0; i < s.dynamic_ports.size(); ++i) {
    auto [first, last] = s.dynamic_ports[i];
    out += (i ? ", " : "") + std::to_string(first);
    if (last != first) out += "-" + std::to_string(last);
  }
  out += " } }\n";
  const auto unique = unique_elements(survivors);
  for (const Family& f : {kV4, kV6}) {
    out += std::string("  set pinholes") + f.suffix + " { type " +
           (f.v4 ? "ipv4_addr . ipv4_addr" : "ipv6_addr . ipv6_addr") +
           " . inet_service; flags timeout; size " + std::to_string(s.max_pinholes) + ";";
    std::string elements;
    for (const PinholeElement& e : unique)
      if (is_mapped(e.key.client) == f.v4)
        elements += (elements.empty() ? "" : ", ") + element_text(e);
    if (!elements.empty()) out += " elements = { " + elements + " };";
    out += " }\n";
  }
  for (const char* c : {"no_pinhole", "relay_gone", "epm_diverted", "pinhole_diverted"})
    out += std::string("  counter ") + c + " { }\n";

  out += "  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n";
  out += "    iif \"lo\" accept\n";
  out += "    meta l4proto tcp socket transparent 1 meta mark set " + mark + " accept\n";
  out += "    ct mark " + mark + " meta l4proto tcp counter name \"relay_gone\" drop\n";
  for (const Family& f : {kV4, kV6}) {
    const auto clients = of_family(s.clients, f);
    const auto servers = of_family(s.servers, f);
    // A family is governed when both lists are "any" or name prefixes of it.
    if ((!s.clients.empty() && clients.empty()) || (!s.servers.empty() && servers.empty()))
      continue;
    std::string m = std::string("    meta nfproto ") + f.nfproto;
    if (!clients.empty()) m += std::string(" ") + f.l3 + " saddr @clients" + f.suffix;
    if (!servers.empty()) m += std::string(" ") + f.l3 + " daddr @servers" + f.suffix;
    if (s.mode == Mode::kHost) m += " fib daddr type local";
    const std::string divert = std::string(" meta mark set ") + mark + " ct mark set " + mark;
    const std::string key =
        std::string(" ") + f.l3 + " saddr . " + f.l3 + " daddr . tcp dport @pinholes" + f.suffix;
    out += m + " tcp dport 135 ct state new tproxy " + f.l3 +
           " to :" + std::to_string(s.epm_listen_port) + divert +
           " counter name \"epm_diverted\" accept\n";
    out += m + " tcp dport 135 ct state new counter name \"relay_gone\" drop\n";
    out += m + " tcp dport @dynports" + key + " ct state new tproxy " + f.l3 +
           " to :" + std::to_string(s.pinhole_listen_port) + divert +
           " counter name \"pinhole_diverted\" accept\n";
    out += m + " tcp dport @dynports" + key + " ct state new counter name \"relay_gone\" drop\n";
    out += m + " tcp dport @dynports ct state new counter name \"no_pinhole\" drop\n";
  }
  out += "  }\n";
  out += "  chain forward {\n    type filter hook forward priority filter; policy accept;\n";
  out += "    ct mark " + mark + " drop\n  }\n}\n";
  return out;
}

std::expected<void, std::string> Nft::install(const TableSpec& spec,
                                              std::span<const PinholeElement> survivors) {
  if (auto why = validate(spec); !why.empty()) return std::unexpected("table: " + why);
  for (const PinholeElement& e : survivors)
    if (auto why = validate(e); !why.empty())
      return std::unexpected("pinhole " + element_key(e.key) + ": " + why);
  auto r = run(render(spec, survivors));
  if (!r) return std::unexpected(r.error());
  return {};
}

std::expected<bool, std::string> Nft::installed() {
  auto r = run("list tables inet");
  if (!r) return std::unexpected(r.error());
  const std::string want = "table inet " + std::string(kTableName) + "\n";
  std::string_view text = *r;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line =
        text.substr(0, nl == std::string_view::npos ? text.size() : nl + 1);
    if (line == want || line == want.substr(0, want.size() - 1)) return true;
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return false;
}

std::expected<std::vector<RecoveredPinhole>, std::string> Nft::recover() {
  auto present = installed();
  if (!present) return std::unexpected(present.error());
  std::vector<RecoveredPinhole> out;
  if (!*present) return out;
  for (const char* set : {"pinholes4", "pinholes6"}) {
    // Text, not JSON: nft's JSON gives timeouts in whole seconds, the text in milliseconds.
    auto r = run("list set inet " + std::string(kTableName) + " " + set);
    if (!r) return std::unexpected(r.error());
    auto parsed = parse_set_listing(*r);
    if (!parsed) return std::unexpected(parsed.error());
    for (auto& p : *parsed)
      out.push_back(std::move(p));
  }
  return out;
}

std::expected<void, std::string> Nft::add(std::span<const PinholeElement> elements) {
  for (const PinholeElement& e : elements)
    if (auto why = validate(e); !why.empty())
      return std::unexpected("pinhole " + element_key(e.key) + ": " + why);
  const auto unique = unique_elements(elements);
  if (unique.empty()) return {};
  // add (a no-op when present) + delete + add: one batch that creates or refreshes each element,
  // the timeout and comment included (an add alone leaves an existing element as it was).
  auto key_of = [](const PinholeElement& e) { return element_key(e.key); };
  const std::string commands = element_commands("add", unique, key_of) +
                               element_commands("delete", unique, key_of) +
                               element_commands("add", unique, element_text);
  auto r = run(commands);
  if (!r) return std::unexpected(r.error());
  return {};
}

std::expected<void, std::string> Nft::remove(std::span<const PinholeKey> keys) {
  std::vector<PinholeKey> unique(keys.begin(), keys.end());
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  for (const PinholeKey& k : unique)
    if (is_mapped(k.client) != is_mapped(k.server) || k.port == 0)
      return std::unexpected("pinhole " + element_key(k) + ": bad key");
  if (unique.empty()) return {};
  // add (without timeout: it lives only inside this batch) + delete: an element that is not
  // there, or expired a moment ago, is not an error and the others are still removed.
  const std::string commands = element_commands("add", unique, element_key) +
                               element_commands("delete", unique, element_key);
  auto r = run(commands);
  if (!r) return std::unexpected(r.error());
  return {};
}

std::expected<void, std::string> Nft::uninstall() {
  const std::string table = "inet " + std::string(kTableName);
  auto r = run("table " + table + "\ndelete table " + table + "\n");
  if (!r) return std::unexpected(r.error());
  return {};
}

std::expected<std::vector<std::pair<std::string, std::uint64_t>>, std::string> Nft::counters() {
  auto r = run("list counters table inet " + std::string(kTableName), /*json=*/true);
  if (!r) return std::unexpected(r.error());
  std::vector<std::pair<std::string, std::uint64_t>> out;
  const auto doc = nlohmann::json::parse(*r, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.contains("nftables") || !doc["nftables"].is_array())
    return std::unexpected("nft: unexpected JSON from list counters");
  for (const auto& item : doc["nftables"]) {
    if (!item.contains("counter")) continue;
    const auto& c = item["counter"];
    if (!c.contains("name") || !c["name"].is_string() || !c.contains("packets") ||
        !c["packets"].is_number_unsigned())
      return std::unexpected("nft: counter without name or packets");
    out.emplace_back(c["name"].get<std::string>(), c["packets"].get<std::uint64_t>());
  }
  return out;
}

// ----------------------------------------------------------------------------------------------
// Policy routing over rtnetlink

namespace {

// NLMSG_DATA without its const-dropping cast.
const std::uint8_t* payload(const nlmsghdr* m) {
  return reinterpret_cast<const std::uint8_t*>(m) + NLMSG_HDRLEN;
}

class Netlink {
 public:
  static std::expected<Netlink, std::string> open() {
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return std::unexpected(std::string("netlink socket: ") + std::strerror(errno));
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      const int e = errno;
      ::close(fd);
      return std::unexpected(std::string("netlink bind: ") + std::strerror(e));
    }
    const int one = 1;  // error messages from the kernel, where it has them
    ::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    return Netlink(fd);
  }
  Netlink(Netlink&& o) noexcept : fd_(std::exchange(o.fd_, -1)), seq_(o.seq_) {}
  Netlink& operator=(Netlink&&) = delete;
  ~Netlink() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Sends one request (flags | NLM_F_REQUEST | NLM_F_ACK); returns 0 or the kernel's errno.
  std::expected<int, std::string> request(std::vector<std::uint8_t> msg, std::uint16_t flags) {
    auto* h = reinterpret_cast<nlmsghdr*>(msg.data());
    h->nlmsg_flags = static_cast<std::uint16_t>(flags | NLM_F_REQUEST | NLM_F_ACK);
    h->nlmsg_seq = ++seq_;
    if (auto s = send(msg); !s) return std::unexpected(s.error());
    int result = 0;
    bool done = false;
    auto r = receive([&](const nlmsghdr* m) {
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* e = reinterpret_cast<const nlmsgerr*>(payload(m));
        result = -e->error;
        done = true;
      }
      return !done;
    });
    if (!r) return std::unexpected(r.error());
    return result;
  }

  // Dumps (NLM_F_DUMP) and hands every message to `each`.
  template <typename F>
  std::expected<void, std::string> dump(std::vector<std::uint8_t> msg, F&& each) {
    auto* h = reinterpret_cast<nlmsghdr*>(msg.data());
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    h->nlmsg_seq = ++seq_;
    if (auto s = send(msg); !s) return std::unexpected(s.error());
    int error = 0;
    auto r = receive([&](const nlmsghdr* m) {
      if (m->nlmsg_type == NLMSG_DONE) return false;
      if (m->nlmsg_type == NLMSG_ERROR) {
        error = -reinterpret_cast<const nlmsgerr*>(payload(m))->error;
        return false;
      }
      each(m);
      return true;
    });
    if (!r) return std::unexpected(r.error());
    if (error != 0) return std::unexpected(std::string("netlink dump: ") + std::strerror(error));
    return {};
  }

 private:
  explicit Netlink(int fd) : fd_(fd) {}

  std::expected<void, std::string> send(const std::vector<std::uint8_t>& msg) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                 sizeof kernel) != static_cast<ssize_t>(msg.size()))
      return std::unexpected(std::string("netlink send: ") + std::strerror(errno));
    return {};
  }

  // Reads messages of the current sequence until `on` returns false.
  template <typename F>
  std::expected<void, std::string> receive(F&& on) {
    std::vector<std::uint8_t> buf(1 << 16);
    for (;;) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(std::string("netlink recv: ") + std::strerror(errno));
      }
      // NLMSG_OK / NLMSG_NEXT spelled out: the macros mix signedness and cast away const.
      const auto size = static_cast<std::size_t>(n);
      for (std::size_t off = 0; off + sizeof(nlmsghdr) <= size;) {
        const auto* m = reinterpret_cast<const nlmsghdr*>(buf.data() + off);
        if (m->nlmsg_len < sizeof(nlmsghdr) || m->nlmsg_len > size - off) break;
        off += NLMSG_ALIGN(m->nlmsg_len);
        if (m->nlmsg_seq != seq_) continue;  // a late answer to an earlier request
        if (!on(m)) return {};
      }
    }
  }

  int fd_ = -1;
  std::uint32_t seq_ = 0;
};

// A netlink message under construction: header, family header, attributes.
class Message {
 public:
  template <typename Hdr>
  Message(std::uint16_t type, const Hdr& hdr) {
    buf_.resize(NLMSG_SPACE(sizeof(Hdr)));
    auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_type = type;
    std::memcpy(NLMSG_DATA(h), &hdr, sizeof hdr);
    set_length();
  }
  void attr(std::uint16_t type, const void* data, std::size_t size) {
    const std::size_t at = buf_.size();
    buf_.resize(at + RTA_SPACE(size));
    auto* a = reinterpret_cast<rtattr*>(buf_.data() + at);
    a->rta_type = type;
    a->rta_len = static_cast<std::uint16_t>(RTA_LENGTH(size));
    std::memcpy(RTA_DATA(a), data, size);
    set_length();
  }
  void u32(std::uint16_t type, std::uint32_t v) { attr(type, &v, sizeof v); }
  std::vector<std::uint8_t> take() { return std::move(buf_); }

 private:
  void set_length() {
    reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = static_cast<std::uint32_t>(buf_.size());
  }
  std::vector<std::uint8_t> buf_;
};

// The attributes of a message whose family header is `Hdr`.
template <typename Hdr>
std::map<std::uint16_t, std::span<const std::uint8_t>> attributes(const nlmsghdr* m) {
  std::map<std::uint16_t, std::span<const std::uint8_t>> out;
  const auto* hdr = reinterpret_cast<const std::uint8_t*>(payload(m));
  // RTA_OK / RTA_NEXT / RTA_DATA spelled out (the macros cast away const).
  const std::size_t start = NLMSG_ALIGN(sizeof(Hdr));
  const std::size_t total = m->nlmsg_len > NLMSG_HDRLEN ? m->nlmsg_len - NLMSG_HDRLEN : 0;
  for (std::size_t off = start; off + sizeof(rtattr) <= total;) {
    const auto* a = reinterpret_cast<const rtattr*>(hdr + off);
    if (a->rta_len < sizeof(rtattr) || a->rta_len > total - off) break;
    out[a->rta_type] = {hdr + off + RTA_LENGTH(0), a->rta_len - RTA_LENGTH(0)};
    off += RTA_ALIGN(a->rta_len);
  }
  return out;
}
std::optional<std::uint32_t> u32_of(const std::map<std::uint16_t, std::span<const std::uint8_t>>& a,
                                    std::uint16_t type) {
  auto it = a.find(type);
  if (it == a.end() || it->second.size() != 4) return std::nullopt;
  std::uint32_t v;
  std::memcpy(&v, it->second.data(), 4);
  return v;
}

std::string family_name(int family) {
  return family == AF_INET ? "IPv4" : "IPv6";
}

// The priorities of the rules "fwmark MARK/0xffffffff lookup TABLE" with no other selector.
std::expected<std::vector<std::uint32_t>, std::string> our_rules(Netlink& nl, int family,
                                                                 std::uint32_t mark,
                                                                 std::uint32_t table) {
  fib_rule_hdr req{};
  req.family = static_cast<std::uint8_t>(family);
  std::vector<std::uint32_t> prefs;
  auto r = nl.dump(Message(RTM_GETRULE, req).take(), [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWRULE) return;
    const auto* h = reinterpret_cast<const fib_rule_hdr*>(payload(m));
    const auto a = attributes<fib_rule_hdr>(m);
    const std::uint32_t t = u32_of(a, FRA_TABLE).value_or(h->table);
    if (h->action != FR_ACT_TO_TBL || t != table || h->src_len || h->dst_len || h->tos ||
        h->flags != 0 || u32_of(a, FRA_FWMARK) != mark ||
        u32_of(a, FRA_FWMASK).value_or(0xffffffff) != 0xffffffff)
      return;
    for (std::uint16_t other :
         {FRA_SRC, FRA_DST, FRA_IIFNAME, FRA_OIFNAME, FRA_GOTO, FRA_FLOW, FRA_TUN_ID, FRA_L3MDEV,
          FRA_UID_RANGE, FRA_IP_PROTO, FRA_SPORT_RANGE, FRA_DPORT_RANGE})
      if (a.contains(other)) return;
    if (auto s = u32_of(a, FRA_SUPPRESS_PREFIXLEN); s && *s != 0xffffffff) return;
    if (auto s = u32_of(a, FRA_SUPPRESS_IFGROUP); s && *s != 0xffffffff) return;
    prefs.push_back(u32_of(a, FRA_PRIORITY).value_or(0));
  });
  if (!r) return std::unexpected(r.error());
  return prefs;
}

Message rule_message(std::uint16_t type, int family, std::uint32_t mark, std::uint32_t table) {
  fib_rule_hdr h{};
  h.family = static_cast<std::uint8_t>(family);
  h.action = FR_ACT_TO_TBL;
  h.table = table < 256 ? static_cast<std::uint8_t>(table) : std::uint8_t{RT_TABLE_UNSPEC};
  Message m(type, h);
  m.u32(FRA_FWMARK, mark);
  m.u32(FRA_FWMASK, 0xffffffff);
  m.u32(FRA_TABLE, table);
  return m;
}

Message route_message(std::uint16_t type, int family, std::uint32_t table, int lo) {
  rtmsg r{};
  r.rtm_family = static_cast<std::uint8_t>(family);
  r.rtm_dst_len = 0;
  r.rtm_table = table < 256 ? static_cast<std::uint8_t>(table) : std::uint8_t{RT_TABLE_UNSPEC};
  r.rtm_protocol = RTPROT_BOOT;  // what `ip route add` uses
  r.rtm_scope = RT_SCOPE_HOST;
  r.rtm_type = RTN_LOCAL;
  Message m(type, r);
  m.u32(RTA_TABLE, table);
  m.u32(RTA_OIF, static_cast<std::uint32_t>(lo));
  return m;
}

std::string failure(const std::string& what, int family, int err) {
  return what + " (" + family_name(family) + "): " + std::strerror(err);
}

}  // namespace

std::expected<void, std::string> install_routing(std::uint32_t mark, std::uint32_t table) {
  if (mark == 0) return std::unexpected("fwmark 0");
  if (table == 0 || (table >= 253 && table <= 255))
    return std::unexpected("route table " + std::to_string(table) + " is the kernel's own");
  const int lo = static_cast<int>(::if_nametoindex("lo"));
  if (lo == 0) return std::unexpected("no loopback device");
  auto nl = Netlink::open();
  if (!nl) return std::unexpected(nl.error());
  for (int family : {AF_INET, AF_INET6}) {
    // The kernel would add a second identical rule (at another priority): look first.
    auto rules = our_rules(*nl, family, mark, table);
    if (!rules) return std::unexpected(rules.error());
    if (rules->empty()) {
      auto r = nl->request(rule_message(RTM_NEWRULE, family, mark, table).take(),
                           NLM_F_CREATE | NLM_F_EXCL);
      if (!r) return std::unexpected(r.error());
      if (*r != 0 && *r != EEXIST) return std::unexpected(failure("ip rule add", family, *r));
    }
    auto r = nl->request(route_message(RTM_NEWROUTE, family, table, lo).take(),
                         NLM_F_CREATE | NLM_F_EXCL);
    if (!r) return std::unexpected(r.error());
    if (*r != 0 && *r != EEXIST)
      return std::unexpected(failure("ip route add local default table", family, *r));
  }
  return {};
}

std::expected<void, std::string> remove_routing(std::uint32_t mark, std::uint32_t table) {
  if (mark == 0) return std::unexpected("fwmark 0");
  const int lo = static_cast<int>(::if_nametoindex("lo"));
  auto nl = Netlink::open();
  if (!nl) return std::unexpected(nl.error());
  for (int family : {AF_INET, AF_INET6}) {
    auto rules = our_rules(*nl, family, mark, table);
    if (!rules) return std::unexpected(rules.error());
    for (std::uint32_t pref : *rules) {
      Message m = rule_message(RTM_DELRULE, family, mark, table);
      m.u32(FRA_PRIORITY, pref);
      auto r = nl->request(m.take(), 0);
      if (!r) return std::unexpected(r.error());
      if (*r != 0 && *r != ENOENT) return std::unexpected(failure("ip rule del", family, *r));
    }
    if (lo == 0) continue;
    auto r = nl->request(route_message(RTM_DELROUTE, family, table, lo).take(), 0);
    if (!r) return std::unexpected(r.error());
    // ESRCH (IPv4) / ENOENT (IPv6): the route is not there.
    if (*r != 0 && *r != ESRCH && *r != ENOENT)
      return std::unexpected(failure("ip route del local default table", family, *r));
  }
  return {};
}

}  // namespace rpcgate::firewall::kernel
