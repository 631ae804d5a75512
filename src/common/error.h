// Shared plumbing for the per-component error enums (one documented `enum class Errc` and one
// std::error_category per component; fallible functions return std::expected<T, std::error_code>).
//
// Each component declares `enum class Errc` plus a `describe(Errc)` that returns a static,
// human-readable string, and instantiates EnumCategory once:
//
//   const std::error_category& policy_category() {
//     static const common::EnumCategory<Errc> c("rpcgate.policy", &describe);
//     return c;
//   }
//   std::error_code make_error_code(Errc e) { return {static_cast<int>(e), policy_category()}; }
//
// and specialises std::is_error_code_enum<Errc> so `return Errc::kFoo;` converts to
// std::error_code and std::unexpected(...) composes naturally.
#pragma once

#include <string>
#include <system_error>

namespace rpcgate::common {

template <typename E>
class EnumCategory final : public std::error_category {
 public:
  using Describe = const char* (*)(E);
  EnumCategory(const char* name, Describe describe) : name_(name), describe_(describe) {}
  const char* name() const noexcept override { return name_; }
  std::string message(int value) const override { return describe_(static_cast<E>(value)); }

 private:
  const char* name_;
  Describe describe_;
};

}  // namespace rpcgate::common
