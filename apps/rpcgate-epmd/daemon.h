// rpcgate-epmd: the endpoint mapper (EPM e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0 on TCP 135)
// and port broker (rpcgate_broker on the local endpoint), one process, one io thread.
//
// What it wires together (each piece documents its own contract):
//   runtime::Server        listeners, connections, associations, the management interface
//   epm::EpmService        ept_* operations over the endpoint database
//   runtime::BrokerService AllocatePort / ReleasePort / HoldLease over the policy's allocator
//   connection close  ->   EpmService::connection_closed + broker release: a registrant that
//                          held a lease (AllocatePort / HoldLease) and dies (kill -9 included)
//                          leaves no entry and holds no port.
//   runtime::LivenessProber the sweep of persistent entries (plain ept_insert: epm_service.h
//                          "Leases"), every sweep_interval_ms; static [[epmd.entry]] entries
//                          loaded at start and replaced as a set on SIGHUP (config.h).
//
// Registration (ept_insert / ept_delete / ept_mgmt_delete) is local only (MS-RPCE 3.1.3.5.3):
// allowed for registrants (root, epmd's own uid, Config::registrants' users and @groups): on the
// Unix socket by SO_PEERCRED, and over TCP from loopback peers whose socket's owner uid the
// kernel reports (NETLINK_SOCK_DIAG) when Config::tcp_registration is on; everyone else - a
// loopback peer of unknown uid too - gets ept_s_cant_perform_op (the broker: status 5).
#pragma once

#include <memory>
#include <string>

#include "config.h"
#include "policy/policy.h"

namespace rpcgate::epmd {

// Loads the policy named by config.policy_file ("" = embedded default). A file that cannot be
// read is an error (the daemon refuses to start: an administrator asked for a policy and must
// not silently get another). An invalid policy is NOT an error: the daemon serves lookups and
// static registrations, and every dynamic allocation fails with 87.
std::expected<policy::Policy, std::string> load_policy(const std::string& file);

// Runs the daemon until SIGINT/SIGTERM. Returns the process exit status: 0 after a clean stop,
// 1 when a listener cannot be opened, privileges cannot be dropped, or a directory above the
// control socket is not safe (owned by another user than root or epmd's, or writable by others
// without the sticky bit) - with one message on stderr naming the address, user or directory
// (its owner and mode); 2 when the endpoint map refuses the [[epmd.entry]] set.
int run(const Config& config, policy::Policy policy);

}  // namespace rpcgate::epmd
