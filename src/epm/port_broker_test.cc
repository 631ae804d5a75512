#include "epm/port_broker.h"

#include <gtest/gtest.h>

namespace rpcgate::epm {
namespace {

using policy::PortClass;

policy::Policy make_policy(std::vector<std::string> ports, std::string available = "Y",
                           std::string use = "Y") {
  policy::PolicyInput in;
  in.source = "/etc/rpcgate/rpcgate.toml";
  in.ports = policy::RawValue{policy::RawValue::Type::kMultiString, "REG_MULTI_SZ", ports, 3};
  in.ports_internet_available =
      policy::RawValue{policy::RawValue::Type::kString, "REG_SZ", {available}, 4};
  in.use_internet_ports = policy::RawValue{policy::RawValue::Type::kString, "REG_SZ", {use}, 5};
  in.dynamic_range = {50000, 50009};
  return policy::resolve(in);
}

TEST(PortBroker, InvalidPolicyEventCarriesTheOffendingEntry) {
  PortBroker broker(make_policy({"5000-5001", "6000", "70000"}), 1);
  auto r = broker.allocate(7, PortClass::kInternet);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, policy::Errc::kInvalidParameter);
  EXPECT_EQ(r.error().code.value(), 87);
  const auto& ev = r.error().event;
  EXPECT_EQ(ev.event_id, "RPCGATE-5820");
  EXPECT_EQ(ev.code, 87);
  EXPECT_EQ(ev.policy_source, "/etc/rpcgate/rpcgate.toml");
  EXPECT_EQ(ev.offending, "Ports entry 3 \"70000\": port outside 0-65535");
  EXPECT_EQ(ev.requested, PortClass::kInternet);
  EXPECT_EQ(ev.owner, 7u);
  EXPECT_EQ(ev.internet.capacity, 0u);
  EXPECT_NE(ev.to_string().find("RPCGATE-5820 code=87"), std::string::npos) << ev.to_string();
  EXPECT_EQ(broker.stats().failures_invalid, 1u);
}

TEST(PortBroker, ExhaustionEventAndOwnerBookkeeping) {
  // Internet = 5000-5001, intranet = 50000-50009 (the dynamic range minus nothing).
  PortBroker broker(make_policy({"5000-5001"}), 2);
  auto a = broker.allocate(1, PortClass::kInternet);
  auto b = broker.allocate(2, PortClass::kDefault);  // UseInternetPorts=Y
  ASSERT_TRUE(a && b);
  auto c = broker.allocate(3, PortClass::kInternet);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code.value(), 1721);
  const auto& ev = c.error().event;
  EXPECT_EQ(ev.event_id, "RPCGATE-1721");
  EXPECT_EQ(ev.internet.capacity, 2u);
  EXPECT_EQ(ev.internet.free, 0u);
  EXPECT_EQ(ev.internet.held, 2u);
  EXPECT_EQ(ev.intranet.free, 10u);
  EXPECT_EQ(ev.offending, "no free port in the internet class (2 ports, all held)");
  // A probe that rejects everything: exhaustion with a different reason.
  auto d = broker.allocate(3, PortClass::kIntranet, [](std::uint16_t) { return false; });
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().event.offending,
            "every free port of the intranet class (10 of 10) failed the bind probe");
  // Only the owner can release; release_owner returns everything.
  EXPECT_FALSE(broker.release(2, *a));
  auto e = broker.allocate(1, PortClass::kIntranet);
  ASSERT_TRUE(e);
  EXPECT_EQ(broker.holdings(1).size(), 2u);
  EXPECT_EQ(broker.owner_of(*a), 1u);
  auto released = broker.release_owner(1);
  EXPECT_EQ(released.size(), 2u);
  EXPECT_TRUE(broker.holdings(1).empty());
  EXPECT_FALSE(broker.owner_of(*a));
  // The released Internet port is available again.
  auto f = broker.allocate(4, PortClass::kInternet);
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, *a);
  EXPECT_TRUE(broker.release(2, *b));
  EXPECT_FALSE(broker.release(2, *b));
  EXPECT_EQ(broker.stats().held, 1u);
  EXPECT_EQ(broker.stats().failures_exhausted, 2u);
}

TEST(PortBroker, ReloadKeepsWhatTheNewPolicyStillHas) {
  PortBroker broker(make_policy({"5000-5003"}), 3);
  std::vector<std::uint16_t> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(*broker.allocate(static_cast<std::uint64_t>(i), PortClass::kInternet));
  auto report = broker.reload(make_policy({"5000-5001"}));
  EXPECT_EQ(report.kept, (std::vector<std::uint16_t>{5000, 5001}));
  EXPECT_EQ(report.dropped, (std::vector<std::uint16_t>{5002, 5003}));
  EXPECT_EQ(broker.stats().held, 2u);
  EXPECT_FALSE(broker.allocate(9, PortClass::kInternet));  // both kept ports still held
  EXPECT_TRUE(broker.owner_of(5000).has_value());
  // An invalid policy drops everything.
  report = broker.reload(make_policy({"x"}));
  EXPECT_EQ(report.dropped.size(), 2u);
  EXPECT_EQ(broker.stats().owners, 0u);
  EXPECT_EQ(broker.allocate(1, PortClass::kInternet).error().event.event_id, "RPCGATE-5820");
}

}  // namespace
}  // namespace rpcgate::epm
