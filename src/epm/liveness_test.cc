#include "epm/liveness.h"

#include <gtest/gtest.h>

#include "epm/testing/test_util.h"

namespace rpcgate::epm {
namespace {

using namespace testing;

constexpr std::uint64_t kUid = 1000;

EndpointDb db_with(std::initializer_list<std::pair<std::string_view, Registrant>> regs) {
  EndpointDb db;
  for (const auto& [binding, who] : regs)
    EXPECT_EQ(db.insert({entry({}, binding, kSamr10, std::string(binding))}, false, who), 0u)
        << binding;
  return db;
}

Entry entry_of(std::string_view binding, std::uint64_t owner, std::uint64_t authority) {
  auto e = make_entry(entry({}, binding, kSamr10));
  EXPECT_TRUE(e.has_value()) << binding;
  Entry out = e.value_or(Entry{});
  out.owner = owner;
  out.authority = authority;
  return out;
}

TEST(Liveness, WhatIsSwept) {
  auto tcp = probe_target(entry_of("ncacn_ip_tcp:0.0.0.0[5000]", kPersistentOwner, kUid));
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->kind, ProbeTarget::Kind::kTcp);
  EXPECT_EQ(tcp->to_string(), "127.0.0.1:5000");  // the wildcard is probed on loopback
  auto specific = probe_target(entry_of("ncacn_ip_tcp:10.1.2.3[49664]", kPersistentOwner, 0));
  ASSERT_TRUE(specific);
  EXPECT_EQ(specific->to_string(), "10.1.2.3:49664");
  // Leased, epmd's own / static, and port 0: not swept.
  EXPECT_FALSE(probe_target(entry_of("ncacn_ip_tcp:0.0.0.0[5000]", 7, kUid)));
  EXPECT_FALSE(probe_target(entry_of("ncacn_ip_tcp:0.0.0.0[5000]", 0, kEpmdAuthority)));
  EXPECT_FALSE(probe_target(entry_of("ncacn_ip_tcp:0.0.0.0[0]", 0, kUid)));
}

TEST(Liveness, NcalrpcAbsolutePathOnly) {
  // Built by hand: floors 1-3 of a TCP tower, then the ncalrpc RPC protocol and endpoint floors.
  auto e = entry_of("ncacn_ip_tcp:0.0.0.0[5000]", kPersistentOwner, kUid);
  e.rpc_protocol = ndr::protocol_id::kNcalrpc;
  e.tower.floors.resize(4);
  e.tower.floors[2].lhs = {ndr::protocol_id::kNcalrpc};
  auto set_endpoint = [&](std::string_view name) {
    e.tower.floors[3].lhs = {ndr::protocol_id::kNamedPipe};
    e.tower.floors[3].rhs.assign(name.begin(), name.end());
    e.tower.floors[3].rhs.push_back(0);
  };
  set_endpoint("/run/rpcgate-test/srv.sock");
  auto t = probe_target(e);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, ProbeTarget::Kind::kUnix);
  EXPECT_EQ(t->to_string(), "/run/rpcgate-test/srv.sock");
  set_endpoint("LRPC-0123456789abcdef");  // a Windows / Samba name: not swept
  EXPECT_FALSE(probe_target(e));
  set_endpoint("/" + std::string(200, 'x'));  // longer than sockaddr_un
  EXPECT_FALSE(probe_target(e));
  // ncacn_np: not swept.
  e.rpc_protocol = ndr::protocol_id::kNcacn;
  e.tower.floors[2].lhs = {ndr::protocol_id::kNcacn};
  e.tower.floors[3].lhs = {ndr::protocol_id::kSmb};
  EXPECT_FALSE(probe_target(e));
}

TEST(Liveness, FailuresCountConsecutiveRoundsAndSuccessResets) {
  auto db = db_with({{"ncacn_ip_tcp:0.0.0.0[5000]", {kPersistentOwner, kUid}},
                     {"ncacn_ip_tcp:127.0.0.1[5000]", {kPersistentOwner, kUid}},  // same target
                     {"ncacn_ip_tcp:0.0.0.0[5001]", {kPersistentOwner, kUid}},
                     {"ncacn_ip_tcp:0.0.0.0[5002]", {9, kUid}},  // leased
                     {"ncacn_ip_tcp:0.0.0.0[5003]", {kPersistentOwner, kEpmdAuthority}}});
  Sweeper s(3);
  auto round = [&](bool alive_5000, bool alive_5001) {
    auto targets = s.begin_round(db);
    EXPECT_EQ(targets.size(), 2u);
    for (const auto& t : targets)
      s.report(t, t.port == 5000 ? alive_5000 : alive_5001);
    return s.dead_entries(db);
  };
  const auto t5000 = *probe_target(db.entries().begin()->second);
  EXPECT_TRUE(round(false, true).empty());
  EXPECT_TRUE(round(false, true).empty());
  EXPECT_EQ(s.failures_of(t5000), 2u);
  EXPECT_TRUE(round(true, true).empty());  // alive again: the count restarts
  EXPECT_EQ(s.failures_of(t5000), 0u);
  EXPECT_TRUE(round(false, false).empty());
  EXPECT_TRUE(round(false, false).empty());
  auto dead = round(false, false);
  ASSERT_EQ(dead.size(), 3u);  // both entries on 5000 and the one on 5001, not the others
  for (auto id : dead) {
    const auto& e = db.entries().at(id);
    EXPECT_EQ(e.owner, kPersistentOwner);
    EXPECT_NE(e.authority, kEpmdAuthority);
    ASSERT_TRUE(db.remove(id));
  }
  EXPECT_EQ(db.size(), 2u);
  EXPECT_FALSE(db.remove(dead[0]));
  EXPECT_TRUE(s.begin_round(db).empty());
}

TEST(Liveness, NoReportChangesNothingAndGoneTargetsAreForgotten) {
  auto db = db_with({{"ncacn_ip_tcp:0.0.0.0[5000]", {kPersistentOwner, kUid}}});
  Sweeper s(2);
  auto t = s.begin_round(db).at(0);
  s.report(t, false);
  EXPECT_TRUE(s.dead_entries(db).empty());
  s.begin_round(db);  // no report this round (probe timed out of the round): unchanged
  EXPECT_TRUE(s.dead_entries(db).empty());
  EXPECT_EQ(s.failures_of(t), 1u);
  // Deleted and registered again: a new registration starts from 0.
  ASSERT_TRUE(db.remove(db.entries().begin()->first));
  EXPECT_TRUE(s.begin_round(db).empty());
  EXPECT_EQ(s.failures_of(t), 0u);
  EXPECT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[5000]", kSamr10)}, false,
                      Registrant{kPersistentOwner, kUid}),
            0u);
  s.begin_round(db);
  s.report(t, false);
  EXPECT_TRUE(s.dead_entries(db).empty());
  s.begin_round(db);
  s.report(t, false);
  EXPECT_EQ(s.dead_entries(db).size(), 1u);
  EXPECT_EQ(Sweeper(0).failures(), 1u);
}

}  // namespace
}  // namespace rpcgate::epm
