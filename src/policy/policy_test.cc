#include "policy/policy.h"

#include <chrono>
#include <initializer_list>
#include <string>

#include <gtest/gtest.h>

namespace rpcgate::policy {
namespace {

RawValue multi(std::initializer_list<const char*> entries) {
  RawValue v{RawValue::Type::kMultiString, "REG_MULTI_SZ", {}, 0};
  for (const char* e : entries)
    v.strings.emplace_back(e);
  return v;
}
RawValue sz(const char* s) {
  return RawValue{RawValue::Type::kString, "REG_SZ", {s}, 0};
}
RawValue other(const char* type_name) {
  return RawValue{RawValue::Type::kOther, type_name, {}, 0};
}

PolicyInput input(std::optional<RawValue> ports, std::optional<RawValue> pia,
                  std::optional<RawValue> uip, PortRange dynamic = kDefaultDynamicRange) {
  PolicyInput in;
  in.ports = std::move(ports);
  in.ports_internet_available = std::move(pia);
  in.use_internet_ports = std::move(uip);
  in.dynamic_range = dynamic;
  in.source = "test";
  return in;
}

struct ValidCase {
  const char* name;
  PolicyInput in;
  const char* internet;
  const char* intranet;
  PortClass default_class;
};

TEST(Resolve, ValidConfigurations) {
  const ValidCase cases[] = {
      {"kb_example", input(multi({"5000-6000"}), sz("Y"), sz("Y")), "5000-6000", "49152-65535",
       PortClass::kInternet},
      {"internet_yes_default_intranet", input(multi({"5000-6000"}), sz("Y"), sz("N")), "5000-6000",
       "49152-65535", PortClass::kIntranet},
      {"listed_is_intranet", input(multi({"50000-50099", "50200"}), sz("N"), sz("N")),
       "49152-49999,50100-50199,50201-65535", "50000-50099,50200", PortClass::kIntranet},
      {"n_y", input(multi({"50000-50099"}), sz("n"), sz("y")), "49152-49999,50100-65535",
       "50000-50099", PortClass::kInternet},
      {"lower_case_y_n", input(multi({"5984"}), sz("y"), sz("n")), "5984", "49152-65535",
       PortClass::kIntranet},
      {"overlapping_and_single",
       input(multi({"5000-5100", "5050-5200", "5984", "5984"}), sz("Y"), sz("Y")), "5000-5200,5984",
       "49152-65535", PortClass::kInternet},
      {"listed_inside_dynamic_range", input(multi({"49152-49251"}), sz("Y"), sz("Y")),
       "49152-49251", "49252-65535", PortClass::kInternet},
      {"blanks_tolerated",
       input(multi({" 5000 - 5010 ", "\t6000\t", "7000-\t7001"}), sz("Y"), sz("Y")),
       "5000-5010,6000,7000-7001", "49152-65535", PortClass::kInternet},
      {"leading_zeros", input(multi({"05000-05001"}), sz("Y"), sz("Y")), "5000-5001", "49152-65535",
       PortClass::kInternet},
      {"extremes", input(multi({"0", "65535"}), sz("Y"), sz("Y")), "0,65535", "49152-65534",
       PortClass::kInternet},
      {"whole_range_n", input(multi({"0-65535"}), sz("N"), sz("N")), "", "0-65535",
       PortClass::kIntranet},
      {"custom_dynamic_range", input(multi({"6000-6009"}), sz("N"), sz("Y"), PortRange{6000, 6100}),
       "6010-6100", "6000-6009", PortClass::kInternet},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Policy p = resolve(c.in);
    EXPECT_TRUE(p.valid);
    EXPECT_TRUE(p.restricted);
    EXPECT_FALSE(p.error.has_value());
    EXPECT_EQ(p.internet.to_string(), c.internet);
    EXPECT_EQ(p.intranet.to_string(), c.intranet);
    EXPECT_EQ(p.default_class, c.default_class);
    EXPECT_EQ(p.source, "test");
    EXPECT_FALSE(p.internet.intersects(p.intranet));
  }
}

TEST(Resolve, NoValuesIsUnrestricted) {
  const Policy p = resolve(embedded_default());
  EXPECT_TRUE(p.valid);
  EXPECT_FALSE(p.restricted);
  EXPECT_EQ(p.internet.to_string(), "49152-65535");
  EXPECT_EQ(p.intranet.to_string(), "49152-65535");
  EXPECT_EQ(p.default_class, PortClass::kInternet);
  EXPECT_EQ(p.source, "embedded default");
  EXPECT_EQ(p.dynamic_range, kDefaultDynamicRange);

  const Policy q = resolve(input(std::nullopt, std::nullopt, std::nullopt, PortRange{5000, 5099}));
  EXPECT_FALSE(q.restricted);
  EXPECT_EQ(q.internet.to_string(), "5000-5099");
  EXPECT_EQ(q.intranet.to_string(), "5000-5099");
}

struct InvalidCase {
  const char* name;
  PolicyInput in;
  const char* value;
  std::optional<std::size_t> entry;
  const char* message;
};

TEST(Resolve, InvalidConfigurations) {
  const InvalidCase cases[] = {
      {"only_ports", input(multi({"5000-6000"}), std::nullopt, std::nullopt),
       "PortsInternetAvailable", std::nullopt,
       "PortsInternetAvailable is missing: when any of Ports, PortsInternetAvailable, "
       "UseInternetPorts is set, all three must be"},
      {"missing_use", input(multi({"5000-6000"}), sz("Y"), std::nullopt), "UseInternetPorts",
       std::nullopt,
       "UseInternetPorts is missing: when any of Ports, PortsInternetAvailable, "
       "UseInternetPorts is set, all three must be"},
      {"missing_ports", input(std::nullopt, sz("Y"), sz("Y")), "Ports", std::nullopt,
       "Ports is missing: when any of Ports, PortsInternetAvailable, UseInternetPorts is set, "
       "all three must be"},
      // Presence is checked before anything else: a bad Ports does not hide the missing value.
      {"presence_first", input(multi({"70000"}), std::nullopt, sz("x")), "PortsInternetAvailable",
       std::nullopt,
       "PortsInternetAvailable is missing: when any of Ports, PortsInternetAvailable, "
       "UseInternetPorts is set, all three must be"},
      {"ports_reg_sz", input(sz("5000-6000"), sz("Y"), sz("Y")), "Ports", std::nullopt,
       "Ports is REG_SZ; it must be REG_MULTI_SZ"},
      {"ports_dword", input(other("REG_DWORD"), sz("Y"), sz("Y")), "Ports", std::nullopt,
       "Ports is REG_DWORD; it must be REG_MULTI_SZ"},
      {"ports_toml_integer", input(other("integer"), sz("Y"), sz("Y")), "Ports", std::nullopt,
       "Ports is a TOML integer; it must be REG_MULTI_SZ"},
      {"pia_multi", input(multi({"5000"}), multi({"Y"}), sz("Y")), "PortsInternetAvailable",
       std::nullopt, "PortsInternetAvailable is REG_MULTI_SZ; it must be REG_SZ \"Y\" or \"N\""},
      {"uip_bool", input(multi({"5000"}), sz("Y"), other("boolean")), "UseInternetPorts",
       std::nullopt,
       "UseInternetPorts is a TOML boolean; it must be REG_SZ \"Y\" or \"N\" (write \"Y\" or "
       "\"N\" as a string, not true/false)"},
      // Types are checked before entries: the REG_SZ Y/N value wins over entry 1.
      {"types_before_entries", input(multi({"abc"}), sz("Y"), other("REG_EXPAND_SZ")),
       "UseInternetPorts", std::nullopt,
       "UseInternetPorts is REG_EXPAND_SZ; it must be REG_SZ \"Y\" or \"N\""},
      {"no_entries", input(multi({}), sz("Y"), sz("Y")), "Ports", std::nullopt,
       "Ports has no entries"},
      {"entry_70000", input(multi({"5000-5100", "5984", "70000"}), sz("Y"), sz("Y")), "Ports", 3,
       "Ports entry 3 \"70000\": port outside 0-65535"},
      {"entry_abc", input(multi({"5000", "abc"}), sz("Y"), sz("Y")), "Ports", 2,
       "Ports entry 2 \"abc\": not a port or a range"},
      {"entry_reversed", input(multi({"6000-5000"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"6000-5000\": range start is greater than its end"},
      {"entry_empty", input(multi({"5000", ""}), sz("Y"), sz("Y")), "Ports", 2,
       "Ports entry 2 \"\": empty entry"},
      {"entry_blank", input(multi({"  "}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"  \": empty entry"},
      {"range_hi_outside", input(multi({"65000-65536"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"65000-65536\": port outside 0-65535"},
      {"huge_number", input(multi({"99999999999999999999"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"99999999999999999999\": port outside 0-65535"},
      {"negative", input(multi({"-5"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"-5\": not a port or a range"},
      {"plus", input(multi({"+5"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"+5\": not a port or a range"},
      {"hex", input(multi({"0x100"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"0x100\": not a port or a range"},
      {"open_range", input(multi({"5000-"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"5000-\": not a port or a range"},
      {"two_dashes", input(multi({"1-2-3"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"1-2-3\": not a port or a range"},
      {"comma_list", input(multi({"5000,5001"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"5000,5001\": not a port or a range"},
      {"inner_space", input(multi({"50 00"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"50 00\": not a port or a range"},
      {"control_char_quoted", input(multi({"5\"0\n"}), sz("Y"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"5\\\"0\\x0a\": not a port or a range"},
      // Entries are checked in order: the first bad one is reported.
      {"first_bad_entry", input(multi({"5000", "x", "70000"}), sz("Y"), sz("Y")), "Ports", 2,
       "Ports entry 2 \"x\": not a port or a range"},
      // Entries before Y/N values.
      {"entries_before_yes_no", input(multi({"70000"}), sz("maybe"), sz("Y")), "Ports", 1,
       "Ports entry 1 \"70000\": port outside 0-65535"},
      {"pia_yes", input(multi({"5000"}), sz("yes"), sz("Y")), "PortsInternetAvailable",
       std::nullopt, "PortsInternetAvailable is \"yes\"; it must be \"Y\" or \"N\""},
      {"pia_space", input(multi({"5000"}), sz(" Y"), sz("Y")), "PortsInternetAvailable",
       std::nullopt, "PortsInternetAvailable is \" Y\"; it must be \"Y\" or \"N\""},
      {"pia_empty", input(multi({"5000"}), sz(""), sz("Y")), "PortsInternetAvailable", std::nullopt,
       "PortsInternetAvailable is \"\"; it must be \"Y\" or \"N\""},
      {"uip_one", input(multi({"5000"}), sz("N"), sz("1")), "UseInternetPorts", std::nullopt,
       "UseInternetPorts is \"1\"; it must be \"Y\" or \"N\""},
      {"both_yes_no_bad", input(multi({"5000"}), sz("T"), sz("F")), "PortsInternetAvailable",
       std::nullopt, "PortsInternetAvailable is \"T\"; it must be \"Y\" or \"N\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Policy p = resolve(c.in);
    EXPECT_FALSE(p.valid);
    EXPECT_TRUE(p.restricted);
    EXPECT_TRUE(p.internet.empty());
    EXPECT_TRUE(p.intranet.empty());
    ASSERT_TRUE(p.error.has_value());
    EXPECT_EQ(p.error->code, Errc::kInvalidParameter);
    EXPECT_EQ(p.error->value, c.value);
    EXPECT_EQ(p.error->entry, c.entry);
    EXPECT_EQ(p.error->message, c.message);
  }
}

// Issue 10 item 8: 65536 entries of "0-65535" took 5.5 s to resolve (each entry set 65536 bits)
// and stalled a SIGHUP reload. Entries are merged as intervals now; the bound below is a guard
// against the quadratic path coming back (about 1000x the time it takes now, 1/5 of what the old
// code took), not a speed measurement.
TEST(Resolve, ManyOverlappingEntriesResolveInLinearTime) {
  RawValue ports{RawValue::Type::kMultiString, "REG_MULTI_SZ", {}, 0};
  ports.strings.assign(65536, "0-65535");
  const auto start = std::chrono::steady_clock::now();
  const Policy p = resolve(input(std::move(ports), sz("N"), sz("N")));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(p.valid);
  EXPECT_EQ(p.intranet.count(), 65536u);
  EXPECT_EQ(p.internet.count(), 0u);
  EXPECT_LT(took, std::chrono::seconds(1));
}

TEST(Policy, SetForFollowsDefaultClass) {
  Policy p = resolve(input(multi({"5000-5099"}), sz("Y"), sz("N")));
  EXPECT_EQ(&p.set_for(PortClass::kInternet), &p.internet);
  EXPECT_EQ(&p.set_for(PortClass::kIntranet), &p.intranet);
  EXPECT_EQ(&p.set_for(PortClass::kDefault), &p.intranet);
  p.default_class = PortClass::kInternet;
  EXPECT_EQ(&p.set_for(PortClass::kDefault), &p.internet);
}

TEST(PortClass, NamesRoundTrip) {
  for (PortClass c : {PortClass::kDefault, PortClass::kInternet, PortClass::kIntranet}) {
    EXPECT_EQ(parse_port_class(to_string(c)), c);
    EXPECT_EQ(parse_port_class(std::to_string(static_cast<int>(c))), c);
  }
  EXPECT_EQ(to_string(PortClass::kIntranet), "intranet");
  EXPECT_EQ(parse_port_class("InterNET"), PortClass::kInternet);
  EXPECT_EQ(parse_port_class("DEFAULT"), PortClass::kDefault);
  EXPECT_FALSE(parse_port_class("3"));
  EXPECT_FALSE(parse_port_class(""));
  EXPECT_FALSE(parse_port_class("internets"));
  EXPECT_FALSE(parse_port_class(" internet"));
}

TEST(Errc, CategoryAndNumbers) {
  const std::error_code ec = Errc::kInvalidParameter;
  EXPECT_EQ(ec.value(), 87);
  EXPECT_EQ(&ec.category(), &policy_category());
  EXPECT_STREQ(policy_category().name(), "rpcgate.policy");
  EXPECT_NE(ec.message().find("ERROR_INVALID_PARAMETER"), std::string::npos);
  EXPECT_EQ(make_error_code(Errc::kOutOfResources).value(), 1721);
  EXPECT_NE(make_error_code(Errc::kOutOfResources).message().find("RPC_S_OUT_OF_RESOURCES"),
            std::string::npos);
}

TEST(LoadError, ToString) {
  EXPECT_EQ((LoadError{"a.reg", 7, "bad hex byte"}).to_string(), "a.reg:7: bad hex byte");
  EXPECT_EQ((LoadError{"a.reg", 0, "No such file or directory"}).to_string(),
            "a.reg: No such file or directory");
}

}  // namespace
}  // namespace rpcgate::policy
