// parse_reg: regedit export files (.reg), as regedit writes and imports them.
//
// Decisions where regedit's import behaviour is not documented (tests pin each one):
//  * The header must be the first non-blank line, compared exactly (trailing blanks ignored).
//  * Lines end in LF or CRLF. Leading and trailing blanks of a line are ignored.
//  * A trailing '\' continues a line only inside hex data (the only place regedit wraps); in a
//    REG_SZ `"C:\\"` it is data.
//  * A key path may end in one '\' ([...\Internet\] is the Internet key).
//  * In quoted strings only \\ and \" are escapes; any other backslash is kept literally.
//  * hex(1) is REG_SZ stored as bytes and is read as a string; hex(7) is REG_MULTI_SZ (UTF-16LE
//    in version 5 files, ANSI bytes in REGEDIT4 files). Other types are kept as kOther.
//  * Values before the first key, and under keys we do not read, are syntax-checked and dropped.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/internal/text.h"
#include "policy/policy.h"

namespace rpcgate::policy {

namespace {

using internal::iequals;
using internal::trim_blanks;
using internal::trim_blanks_left;
using internal::trim_blanks_right;

constexpr std::string_view kHeader5 = "Windows Registry Editor Version 5.00";
constexpr std::string_view kHeader4 = "REGEDIT4";
constexpr std::array<std::string_view, 5> kTargetKey = {"HKEY_LOCAL_MACHINE", "SOFTWARE",
                                                        "Microsoft", "Rpc", "Internet"};

constexpr std::string_view kHexDigits = "0123456789abcdefABCDEF";
// `c` must be one of kHexDigits.
unsigned hex_digit(char c) {
  if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
  return static_cast<unsigned>(c - 'A' + 10);
}

struct Line {
  std::string_view text;  // without the line ending
  std::size_t number;     // 1-based
};

class RegParser {
 public:
  RegParser(std::string source, bool unicode) : source_(std::move(source)), unicode_(unicode) {
    input_.source = source_;
  }

  std::expected<PolicyInput, LoadError> run(const std::vector<Line>& lines, std::size_t header) {
    for (std::size_t i = header + 1; i < lines.size(); ++i) {
      std::string_view text = trim_blanks(lines[i].text);
      const std::size_t number = lines[i].number;
      if (text.size() > kMaxLineChars) return fail(number, line_too_long());
      if (text.empty() || text.front() == ';') continue;
      if (text.front() == '[') {
        if (auto r = key_line(text, number); !r) return std::unexpected(r.error());
        continue;
      }
      if (text.front() == '"' || text.front() == '@') {
        if (auto r = value_line(lines, i); !r) return std::unexpected(r.error());
        continue;
      }
      return fail(number, "expected a [key], a \"value\"=data line or a ; comment");
    }
    return std::move(input_);
  }

 private:
  std::unexpected<LoadError> fail(std::size_t line, std::string message) const {
    return std::unexpected(LoadError{source_, line, std::move(message)});
  }
  static std::string line_too_long() {
    return "line longer than " + std::to_string(kMaxLineChars) + " characters";
  }

  // [PATH] or [-PATH]. The path is compared component by component, case-insensitively.
  std::expected<void, LoadError> key_line(std::string_view text, std::size_t number) {
    const auto close = text.rfind(']');
    if (close == std::string_view::npos || close + 1 != text.size()) {
      return fail(number, "key line does not end with ']'");
    }
    std::string_view path = text.substr(1, close - 1);
    const bool remove = !path.empty() && path.front() == '-';
    if (remove) path.remove_prefix(1);
    if (path.empty()) return fail(number, "empty key name");
    if (path.back() == '\\') path.remove_suffix(1);

    std::vector<std::string_view> parts;
    while (true) {
      const auto sep = path.find('\\');
      parts.push_back(path.substr(0, sep));
      if (sep == std::string_view::npos) break;
      path.remove_prefix(sep + 1);
    }
    if (iequals(parts[0], "HKLM")) parts[0] = kTargetKey[0];
    // How many leading components match the target key.
    std::size_t common = 0;
    while (common < parts.size() && common < kTargetKey.size() &&
           iequals(parts[common], kTargetKey[common]))
      ++common;
    const bool is_target = common == kTargetKey.size() && parts.size() == kTargetKey.size();
    const bool is_ancestor_or_self = common == parts.size();
    if (remove) {
      // Deleting a key deletes its subkeys too, so deleting ...\Rpc drops the Internet key.
      if (is_ancestor_or_self) {
        input_.ports.reset();
        input_.ports_internet_available.reset();
        input_.use_internet_ports.reset();
      }
      in_target_ = false;  // values after a deletion line belong to no key
    } else {
      in_target_ = is_target;
    }
    return {};
  }

  // A quoted string starting at s[pos] == '"'. Returns the decoded string and moves pos past
  // the closing quote.
  std::optional<std::string> quoted(std::string_view s, std::size_t& pos) const {
    std::string out;
    for (std::size_t i = pos + 1; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '\\' || s[i + 1] == '"')) {
        out += s[++i];
      } else if (s[i] == '"') {
        pos = i + 1;
        return out;
      } else {
        out += s[i];
      }
    }
    return std::nullopt;
  }

  std::expected<void, LoadError> value_line(const std::vector<Line>& lines, std::size_t& i) {
    const std::size_t number = lines[i].number;
    const std::string_view text = trim_blanks(lines[i].text);
    std::string name;
    std::size_t pos = 0;
    bool is_default = false;
    if (text.front() == '@') {
      is_default = true;
      pos = 1;
    } else {
      auto n = quoted(text, pos);
      if (!n) return fail(number, "unterminated quoted value name");
      name = std::move(*n);
    }
    std::string_view rest = trim_blanks_left(text.substr(pos));
    if (rest.empty() || rest.front() != '=')
      return fail(number, "expected '=' after the value name");
    rest = trim_blanks_left(rest.substr(1));

    std::optional<RawValue> value;  // nullopt: "Name"=- (delete)
    if (rest == "-") {
      // deletion
    } else if (!rest.empty() && rest.front() == '"') {
      std::size_t p = 0;
      auto s = quoted(rest, p);
      if (!s) return fail(number, "unterminated quoted string");
      if (!trim_blanks(rest.substr(p)).empty()) return fail(number, "text after the closing quote");
      value = RawValue{RawValue::Type::kString, "REG_SZ", {std::move(*s)}, number};
    } else if (rest.size() >= 6 && iequals(rest.substr(0, 6), "dword:")) {
      const std::string_view digits = trim_blanks(rest.substr(6));
      if (digits.empty() || digits.size() > 8 ||
          digits.find_first_not_of(kHexDigits) != std::string_view::npos) {
        return fail(number, "dword: needs 1 to 8 hexadecimal digits");
      }
      value = RawValue{RawValue::Type::kOther, "REG_DWORD", {}, number};
    } else if (rest.size() >= 3 && iequals(rest.substr(0, 3), "hex")) {
      auto v = hex_value(lines, i, rest, number);
      if (!v) return std::unexpected(v.error());
      value = std::move(*v);
    } else {
      return fail(number, "value data must be \"string\", dword:, hex: or hex(N):, or - to delete");
    }

    if (!in_target_ || is_default) return {};
    std::optional<RawValue>* slot = nullptr;
    if (iequals(name, "Ports")) {
      slot = &input_.ports;
    } else if (iequals(name, "PortsInternetAvailable")) {
      slot = &input_.ports_internet_available;
    } else if (iequals(name, "UseInternetPorts")) {
      slot = &input_.use_internet_ports;
    }
    if (slot) *slot = std::move(value);
    return {};
  }

  // hex:..., hex(N):..., possibly continued over following lines with a trailing '\'.
  std::expected<RawValue, LoadError> hex_value(const std::vector<Line>& lines, std::size_t& i,
                                               std::string_view rest, std::size_t number) {
    rest.remove_prefix(3);
    unsigned type = 3;  // hex: is REG_BINARY
    std::string type_text;
    if (!rest.empty() && rest.front() == '(') {
      const auto close = rest.find(')');
      if (close == std::string_view::npos || close == 1 || close > 9) {
        return fail(number, "malformed hex(N) type");
      }
      type_text = std::string(rest.substr(1, close - 1));
      type = 0;
      if (type_text.find_first_not_of(kHexDigits) != std::string::npos) {
        return fail(number, "malformed hex(N) type");
      }
      for (char c : type_text)
        type = type * 16 + hex_digit(c);
      rest.remove_prefix(close + 1);
    }
    if (rest.empty() || rest.front() != ':') return fail(number, "expected ':' after hex");
    rest.remove_prefix(1);

    // Join continuation lines: regedit ends a wrapped line with ",\" and indents the next one.
    std::string joined(rest);
    while (true) {
      std::string_view t = trim_blanks_right(joined);
      if (t.empty() || t.back() != '\\') break;
      joined.resize(t.size() - 1);
      if (i + 1 >= lines.size()) break;  // a '\' on the last line continues into nothing
      ++i;
      joined += trim_blanks(lines[i].text);
      if (joined.size() > kMaxLineChars) return fail(number, line_too_long());
    }

    std::vector<std::uint8_t> bytes;
    std::string_view data = trim_blanks(joined);
    while (!data.empty()) {
      const auto comma = data.find(',');
      const std::string_view item = trim_blanks(data.substr(0, comma));
      if (item.empty() || item.size() > 2 ||
          item.find_first_not_of(kHexDigits) != std::string_view::npos) {
        return fail(number, "bad hex byte \"" + std::string(item) + "\"");
      }
      unsigned byte = 0;
      for (char c : item)
        byte = byte * 16 + hex_digit(c);
      bytes.push_back(static_cast<std::uint8_t>(byte));
      if (comma == std::string_view::npos) break;
      data.remove_prefix(comma + 1);
      // A trailing comma (the byte list ended on a wrapped line) ends the data.
      if (trim_blanks(data).empty()) break;
    }

    if (type == 1 || type == 7) {
      std::vector<std::string> strings;
      if (auto r = decode_strings(bytes, number, strings); !r) return std::unexpected(r.error());
      if (type == 1) {
        // REG_SZ stored as bytes: the string ends at the first NUL.
        std::string first = strings.empty() ? std::string() : std::move(strings.front());
        return RawValue{RawValue::Type::kString, "REG_SZ", {std::move(first)}, number};
      }
      if (strings.size() > kMaxPortsEntries) {
        return fail(number, "more than " + std::to_string(kMaxPortsEntries) + " strings");
      }
      return RawValue{RawValue::Type::kMultiString, "REG_MULTI_SZ", std::move(strings), number};
    }
    return RawValue{RawValue::Type::kOther, type_name(type, type_text), {}, number};
  }

  // Splits REG_MULTI_SZ data on NULs, ending at the first empty string (the double NUL); a
  // final string without its NUL still counts. For hex(1) the first string is the value.
  std::expected<void, LoadError> decode_strings(const std::vector<std::uint8_t>& bytes,
                                                std::size_t number,
                                                std::vector<std::string>& out) const {
    const std::size_t width = unicode_ ? 2 : 1;
    if (bytes.size() % width != 0) {
      return fail(number, "odd number of bytes in UTF-16 string data");
    }
    std::size_t start = 0;
    for (std::size_t p = 0; p <= bytes.size(); p += width) {
      const bool end = p == bytes.size();
      const bool nul = !end && bytes[p] == 0 && (width == 1 || bytes[p + 1] == 0);
      if (!end && !nul) continue;
      if (p == start) break;  // empty string: the terminator (or nothing left)
      const std::span<const std::uint8_t> s(bytes.data() + start, p - start);
      out.push_back(unicode_ ? internal::utf16le_to_utf8(s) : internal::latin1_to_utf8(s));
      start = p + width;
      if (end) break;
    }
    return {};
  }

  static std::string type_name(unsigned type, const std::string& text) {
    static constexpr std::array<std::string_view, 12> kNames = {"REG_NONE",
                                                                "REG_SZ",
                                                                "REG_EXPAND_SZ",
                                                                "REG_BINARY",
                                                                "REG_DWORD",
                                                                "REG_DWORD_BIG_ENDIAN",
                                                                "REG_LINK",
                                                                "REG_MULTI_SZ",
                                                                "REG_RESOURCE_LIST",
                                                                "REG_FULL_RESOURCE_DESCRIPTOR",
                                                                "REG_RESOURCE_REQUIREMENTS_LIST",
                                                                "REG_QWORD"};
    if (type < kNames.size()) return std::string(kNames[type]);
    return "hex(" + text + ")";
  }

  std::string source_;
  bool unicode_;
  bool in_target_ = false;
  PolicyInput input_;
};

}  // namespace

std::expected<PolicyInput, LoadError> parse_reg(std::span<const std::uint8_t> bytes,
                                                std::string source) {
  if (bytes.size() > kMaxInputBytes) {
    return std::unexpected(
        LoadError{source, 0, "file larger than " + std::to_string(kMaxInputBytes) + " bytes"});
  }
  // Decode to UTF-8 text. UTF-16LE is what regedit writes; the header then decides how hex(7)
  // data is encoded.
  std::string text;
  bool utf16 = false;
  std::span<const std::uint8_t> body = bytes;
  if (bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xFE) {
    utf16 = true;
    if (bytes.size() % 2 != 0) {
      // Name the last line, where the stray byte is.
      const std::string head = internal::utf16le_to_utf8(bytes.subspan(2, bytes.size() - 3));
      const auto last = static_cast<std::size_t>(std::count(head.begin(), head.end(), '\n')) + 1;
      return std::unexpected(LoadError{source, last, "UTF-16 file has an odd number of bytes"});
    }
    text = internal::utf16le_to_utf8(bytes.subspan(2));
  } else {
    if (bytes.size() >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) {
      body = bytes.subspan(3);
    }
    text.assign(reinterpret_cast<const char*>(body.data()), body.size());
  }

  auto split = [](std::string_view all) {
    std::vector<Line> lines;
    std::size_t number = 1;
    while (true) {
      const auto nl = all.find('\n');
      std::string_view l = all.substr(0, nl);
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      lines.push_back({l, number++});
      if (nl == std::string_view::npos) break;
      all.remove_prefix(nl + 1);
    }
    return lines;
  };
  std::vector<Line> lines = split(text);

  std::size_t header = 0;
  while (header < lines.size() && trim_blanks(lines[header].text).empty())
    ++header;
  const std::string_view first =
      header < lines.size() ? trim_blanks_right(lines[header].text) : std::string_view();
  bool unicode = true;
  if (first == kHeader4) {
    unicode = false;
    if (!utf16) {
      // REGEDIT4 files are ANSI: re-read the bytes as Latin-1 so strings decode consistently.
      text = internal::latin1_to_utf8(body);
      lines = split(text);
    }
  } else if (first != kHeader5) {
    return std::unexpected(LoadError{source, header < lines.size() ? lines[header].number : 1,
                                     "missing header: expected \"" + std::string(kHeader5) +
                                         "\" or \"" + std::string(kHeader4) + "\""});
  }
  RegParser parser(std::move(source), unicode);
  return parser.run(lines, header);
}

}  // namespace rpcgate::policy
