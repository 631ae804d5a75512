// parse_toml: the [policy] table of rpcgate.toml, mapped onto the registry's value types so that
// resolve() judges both sources alike (an array of strings is REG_MULTI_SZ, a string REG_SZ,
// anything else is the wrong type).
#include <array>
#include <string>

#include <toml++/toml.h>

#include "policy/policy.h"

namespace rpcgate::policy {

namespace {

constexpr std::array<std::string_view, 4> kKeys = {"ports", "ports_internet_available",
                                                   "use_internet_ports", "dynamic_range"};

std::string_view toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "value";
}

std::size_t line_of(const toml::node& n) {
  return n.source().begin.line;
}

// type_name is the bare TOML type ("integer"); resolve() words it as "a TOML integer".
RawValue raw_value(const toml::node& n) {
  RawValue v;
  v.line = line_of(n);
  if (const auto* s = n.as_string()) {
    v.type = RawValue::Type::kString;
    v.type_name = "string";
    v.strings.push_back(s->get());
    return v;
  }
  if (const auto* a = n.as_array()) {
    if (a->is_homogeneous(toml::node_type::string) || a->empty()) {
      v.type = RawValue::Type::kMultiString;
      v.type_name = "array of strings";
      v.strings.reserve(a->size());
      for (const auto& e : *a)
        v.strings.push_back(e.as_string()->get());
      return v;
    }
    v.type = RawValue::Type::kOther;
    v.type_name = "array with non-string elements";
    return v;
  }
  v.type = RawValue::Type::kOther;
  v.type_name = std::string(toml_type_name(n));
  return v;
}

}  // namespace

std::expected<PolicyInput, LoadError> parse_toml(std::string_view text, std::string source) {
  if (text.size() > kMaxInputBytes) {
    return std::unexpected(
        LoadError{source, 0, "file larger than " + std::to_string(kMaxInputBytes) + " bytes"});
  }
  toml::table root;
  // toml++ reports syntax errors by exception; this is the only place they are caught, and no
  // exception leaves the library.
  try {
    root = toml::parse(text, std::string_view(source));
  } catch (const toml::parse_error& e) {
    return std::unexpected(
        LoadError{source, e.source().begin.line, "TOML: " + std::string(e.description())});
  } catch (const std::exception& e) {
    return std::unexpected(LoadError{source, 0, std::string("TOML: ") + e.what()});
  }

  PolicyInput input;
  input.source = source;
  const toml::node* policy_node = root.get("policy");
  if (!policy_node) return input;  // no [policy]: unrestricted
  const toml::table* policy = policy_node->as_table();
  if (!policy) {
    return std::unexpected(
        LoadError{source, line_of(*policy_node), "\"policy\" must be a table ([policy])"});
  }

  for (const auto& [key, node] : *policy) {
    const std::string_view k = key.str();
    std::size_t line = line_of(node);
    if (key.source().begin.line != 0) line = key.source().begin.line;
    if (k == "ports") {
      if (const auto* a = node.as_array(); a && a->size() > kMaxPortsEntries) {
        return std::unexpected(LoadError{
            source, line,
            "policy.ports has more than " + std::to_string(kMaxPortsEntries) + " entries"});
      }
      input.ports = raw_value(node);
    } else if (k == "ports_internet_available") {
      input.ports_internet_available = raw_value(node);
    } else if (k == "use_internet_ports") {
      input.use_internet_ports = raw_value(node);
    } else if (k == "dynamic_range") {
      const auto* s = node.as_string();
      const auto range = s ? parse_port_range(s->get()) : std::nullopt;
      if (!range) {
        return std::unexpected(
            LoadError{source, line,
                      "policy.dynamic_range must be a string \"LO-HI\" with 0 <= LO <= HI <= "
                      "65535, e.g. \"49152-65535\""});
      }
      input.dynamic_range = *range;
    } else {
      std::string valid;
      for (const auto name : kKeys) {
        if (!valid.empty()) valid += ", ";
        valid += name;
      }
      return std::unexpected(
          LoadError{source, line,
                    "unknown key \"" + std::string(k) + "\" in [policy]; valid keys: " + valid});
    }
  }
  return input;
}

}  // namespace rpcgate::policy
