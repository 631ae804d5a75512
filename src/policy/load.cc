// load_file: read a policy file and pick its parser from its content, not its name, so a .reg
// exported on Windows works whatever it is called.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "policy/internal/text.h"
#include "policy/policy.h"

namespace rpcgate::policy {

namespace {

bool looks_like_reg(std::span<const std::uint8_t> bytes) {
  if (bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xFE) return true;
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line = internal::trim_blanks(line);
    if (!line.empty()) return line == "Windows Registry Editor Version 5.00" || line == "REGEDIT4";
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return false;
}

}  // namespace

std::expected<PolicyInput, LoadError> load_file(const std::filesystem::path& path) {
  const std::string source = path.string();
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  errno = 0;
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) return std::unexpected(LoadError{source, 0, std::strerror(errno)});

  // One byte more than the limit tells "exactly 1 MiB" from "larger".
  std::vector<std::uint8_t> bytes(kMaxInputBytes + 1);
  const std::size_t n = std::fread(bytes.data(), 1, bytes.size(), file.get());
  if (std::ferror(file.get())) {
    return std::unexpected(LoadError{source, 0, std::strerror(errno != 0 ? errno : EIO)});
  }
  if (n > kMaxInputBytes) {
    return std::unexpected(
        LoadError{source, 0, "file larger than " + std::to_string(kMaxInputBytes) + " bytes"});
  }
  bytes.resize(n);

  if (looks_like_reg(bytes)) return parse_reg(bytes, source);
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  return parse_toml(text, source);
}

}  // namespace rpcgate::policy
