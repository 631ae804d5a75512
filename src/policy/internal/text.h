// Small text helpers shared by the policy parsers and the resolver. Private to src/policy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace rpcgate::policy::internal {

// Space and horizontal tab only: the characters regedit and the registry grammar treat as blanks.
// (Not std::isspace: it depends on the locale and also matches \r, \v, \f.)
inline bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
std::string_view trim_blanks(std::string_view s);
std::string_view trim_blanks_left(std::string_view s);
std::string_view trim_blanks_right(std::string_view s);

// ASCII case-insensitive comparison (registry names are case-insensitive; the names compared
// here are all ASCII, and non-ASCII bytes compare exactly).
bool iequals(std::string_view a, std::string_view b);

// Appends the UTF-8 encoding of `cp` (U+FFFD for surrogates and values above U+10FFFF).
void append_utf8(std::string& out, char32_t cp);

// UTF-16LE code units to UTF-8. An unpaired surrogate becomes U+FFFD: the registry stores
// whatever 16-bit units it was given, and resolve() then judges the string, so decoding never
// fails. `bytes.size()` must be even (callers check and report odd counts themselves).
std::string utf16le_to_utf8(std::span<const std::uint8_t> bytes);

// Latin-1 (what we take ANSI to be) to UTF-8.
std::string latin1_to_utf8(std::span<const std::uint8_t> bytes);

// `s` quoted for a one-line message: "..." with \" \\ and \xNN for control characters.
std::string quote_for_message(std::string_view s);

}  // namespace rpcgate::policy::internal
