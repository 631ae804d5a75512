#include "epmd_metrics.h"

#include <future>
#include <utility>

#include <asio/post.hpp>

#include "rpc/status.h"
#include "runtime/broker_protocol.h"

namespace rpcgate::epmd {
namespace {

using prometheus::MetricType;

constexpr std::array<std::string_view, static_cast<std::size_t>(CallInterface::kCount)>
    kInterfaceNames{"epm", "broker", "other"};
constexpr std::array<std::string_view, kOpnumLabels> kOpnumNames{"0", "1", "2", "3", "4",
                                                                 "5", "6", "7", "8", "other"};

struct NamedStatus {
  std::uint32_t code;
  std::string_view name;
};
// After "ok" and "fault": what the endpoint mapper and the broker answer.
constexpr std::array<NamedStatus, 10> kNamedStatuses{{
    {rpc::status::kEptSNotRegistered, "ept_s_not_registered"},
    {rpc::status::kEptSCantPerformOp, "ept_s_cant_perform_op"},
    {rpc::status::kEptSInvalidContext, "ept_s_invalid_context"},
    {rpc::status::kEptSInvalidEntry, "ept_s_invalid_entry"},
    {rpc::status::kRpcSInvalidInquiryType, "rpc_s_invalid_inquiry_type"},
    {rpc::status::kRpcSInvalidVersOption, "rpc_s_invalid_vers_option"},
    {runtime::broker::kStatusAccessDenied, "5"},
    {runtime::broker::kStatusInvalidParameter, "87"},
    {runtime::broker::kStatusInvalidBinding, "1702"},
    {runtime::broker::kStatusOutOfResources, "1721"},
}};
constexpr std::size_t kStatusOther = 2 + kNamedStatuses.size();
static_assert(kStatusOther < EpmdMetrics::kMaxStatusLabels);

// The error_status_t that ends every ept_* response stub, in the request's byte order.
std::uint32_t trailing_status(std::span<const std::uint8_t> stub, common::Endian endian) {
  if (stub.size() < 4) return ~std::uint32_t{0};  // not a status: "other"
  const auto* p = stub.data() + stub.size() - 4;
  if (endian == common::Endian::kLittle)
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
           std::uint32_t{p[3]} << 24;
  return std::uint32_t{p[3]} | std::uint32_t{p[2]} << 8 | std::uint32_t{p[1]} << 16 |
         std::uint32_t{p[0]} << 24;
}

}  // namespace

CallInterface interface_label(const rpc::SyntaxId& interface) {
  if (interface.uuid == rpc::kEpmSyntax.uuid) return CallInterface::kEpm;
  if (interface.uuid == runtime::broker::broker_syntax().uuid) return CallInterface::kBroker;
  return CallInterface::kOther;
}

std::size_t status_label(std::uint32_t status) {
  if (status == 0) return kStatusOk;
  for (std::size_t i = 0; i < kNamedStatuses.size(); ++i)
    if (kNamedStatuses[i].code == status) return 2 + i;
  return kStatusOther;
}

std::string_view status_name(std::size_t label) {
  if (label == kStatusOk) return "ok";
  if (label == kStatusFault) return "fault";
  if (label - 2 < kNamedStatuses.size()) return kNamedStatuses[label - 2].name;
  return "other";
}

std::size_t status_label_count() {
  return kStatusOther + 1;
}

// The scrape-time series: a snapshot taken on the io thread, turned into families here (on the
// exporter's thread), plus the call-latency histogram.
class EpmdMetrics::Collector : public prometheus::Collectable {
 public:
  explicit Collector(const EpmdMetrics& m) : m_(m) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto latency = metrics::family("rpcgate_epmd_call_duration_seconds",
                                   "Time the endpoint mapper or the broker took to answer one call "
                                   "(the service's work, without the network).",
                                   MetricType::Histogram);
    latency.metric.push_back(m_.latency_.collect());
    out.push_back(std::move(latency));
    const auto s = take();
    if (!s) return out;  // the loop did not answer in time: only what needs no snapshot

    auto gauge = [&](std::string name, std::string help) {
      return metrics::family(std::move(name), std::move(help), MetricType::Gauge);
    };
    auto counter = [&](std::string name, std::string help) {
      return metrics::family(std::move(name), std::move(help), MetricType::Counter);
    };
    auto f = gauge("rpcgate_epmd_policy_valid",
                   "1 if the port policy is valid, 0 if every dynamic allocation fails with 87.");
    metrics::add_sample(f, s->policy_valid ? 1 : 0);
    out.push_back(std::move(f));

    const auto& a = s->broker.allocator;
    f = gauge("rpcgate_epmd_pool_ports", "Ports in the policy's set of a class.");
    metrics::add_sample(f, static_cast<double>(a.internet.capacity), {{"class", "internet"}});
    metrics::add_sample(f, static_cast<double>(a.intranet.capacity), {{"class", "intranet"}});
    out.push_back(std::move(f));
    f = gauge("rpcgate_epmd_pool_ports_held",
              "Ports of a class held by servers through the broker (an unrestricted policy's "
              "classes are the same set).");
    metrics::add_sample(f, static_cast<double>(a.internet.held), {{"class", "internet"}});
    metrics::add_sample(f, static_cast<double>(a.intranet.held), {{"class", "intranet"}});
    out.push_back(std::move(f));

    f = counter("rpcgate_epmd_port_allocations_total", "Ports handed out by AllocatePort.");
    metrics::add_sample(f, static_cast<double>(s->broker.allocations));
    out.push_back(std::move(f));
    f = counter("rpcgate_epmd_port_allocation_failures_total",
                "AllocatePort failures by Win32 code: 87 (the policy is invalid), 1721 (the "
                "class is exhausted, or the caller's uid holds max_ports_per_uid).");
    metrics::add_sample(f, static_cast<double>(s->broker.failures_invalid), {{"code", "87"}});
    metrics::add_sample(f, static_cast<double>(s->broker.failures_exhausted + s->budget_refusals),
                        {{"code", "1721"}});
    out.push_back(std::move(f));

    f = gauge("rpcgate_epmd_leases",
              "Control-socket connections holding a lease (their registrations and ports go "
              "when they close).");
    metrics::add_sample(f, static_cast<double>(s->leases));
    out.push_back(std::move(f));
    f = gauge("rpcgate_epmd_registrations",
              "Entries in the endpoint map (epmd's own and static ones included).");
    metrics::add_sample(f, static_cast<double>(s->epm.entries));
    out.push_back(std::move(f));
    f = counter("rpcgate_epmd_registration_inserts_total", "Successful ept_insert calls.");
    metrics::add_sample(f, static_cast<double>(s->epm.registrations));
    out.push_back(std::move(f));
    f = counter("rpcgate_epmd_registration_deletes_total",
                "Registrations removed: by ept_delete / ept_mgmt_delete calls (cause=ept_delete, "
                "counted per call), entries of a lease whose connection closed (lease_end) and "
                "entries the liveness sweep removed (sweep).");
    metrics::add_sample(f, static_cast<double>(s->epm.unregistrations), {{"cause", "ept_delete"}});
    metrics::add_sample(f, static_cast<double>(s->epm.owner_removals), {{"cause", "lease_end"}});
    metrics::add_sample(f, static_cast<double>(s->sweep_removals), {{"cause", "sweep"}});
    out.push_back(std::move(f));

    f = gauge("rpcgate_epmd_connections", "Connections held now (TCP and control socket).");
    metrics::add_sample(f, static_cast<double>(s->server.connections_active));
    out.push_back(std::move(f));
    f = counter("rpcgate_epmd_connections_refused_total",
                "Connections accepted and closed at once, by the budget that refused them.");
    metrics::add_sample(f, static_cast<double>(s->server.rejected_tcp_total),
                        {{"cause", "max_connections"}});
    metrics::add_sample(f, static_cast<double>(s->server.rejected_tcp_per_peer),
                        {{"cause", "max_connections_per_peer"}});
    metrics::add_sample(f, static_cast<double>(s->server.rejected_local_total),
                        {{"cause", "max_local_connections"}});
    metrics::add_sample(f, static_cast<double>(s->server.rejected_local_per_uid),
                        {{"cause", "max_local_connections_per_uid"}});
    out.push_back(std::move(f));
    return out;
  }

 private:
  // The snapshot, taken by the io thread; nullopt when it does not answer in time.
  std::optional<EpmdSnapshot> take() const {
    if (m_.io_.stopped() || m_.server_ == nullptr) return std::nullopt;
    auto promise = std::make_shared<std::promise<EpmdSnapshot>>();
    auto future = promise->get_future();
    asio::post(m_.io_, [promise, &m = m_] { promise->set_value(m.snapshot()); });
    if (future.wait_for(metrics::kSnapshotTimeout) != std::future_status::ready)
      return std::nullopt;
    try {
      return future.get();
    } catch (const std::exception&) {  // the loop dropped the request unrun (stopping)
      return std::nullopt;
    }
  }

  const EpmdMetrics& m_;
};

std::expected<std::unique_ptr<EpmdMetrics>, std::string> EpmdMetrics::start(
    const metrics::Endpoint& at, asio::io_context& io) {
  auto exporter = metrics::Exporter::start(at);
  if (!exporter) return std::unexpected(exporter.error());
  std::unique_ptr<EpmdMetrics> m(new EpmdMetrics(io));
  m->calls_family_ = &prometheus::BuildCounter()
                          .Name("rpcgate_epmd_calls_total")
                          .Help(
                              "Calls answered, by interface (epm, broker), opnum and status "
                              "(ok, fault, or the operation's error status).")
                          .Register((*exporter)->registry());
  m->exporter_ = std::move(*exporter);
  m->exporter_->add(std::make_shared<Collector>(*m));
  return m;
}

EpmdMetrics::~EpmdMetrics() {
  exporter_.reset();  // no scrape reads the members below past this line
}

void EpmdMetrics::serve(runtime::Server& server, const epm::EpmService& epm,
                        const runtime::BrokerService& broker) {
  epm_ = &epm;
  broker_ = &broker;
  server.on_connection_closed([this](std::uint64_t id) { leases_.erase(id); });
  server_ = &server;
}

void EpmdMetrics::broker_event(const runtime::BrokerEvent& e) {
  using Kind = runtime::BrokerEvent::Kind;
  if (e.kind == Kind::kConnectionGone) return;  // not a call
  broker_status_ = e.status;
  if ((e.kind == Kind::kAllocated || e.kind == Kind::kLeaseHeld) && e.connection_id != 0)
    leases_.insert(e.connection_id);
  if (e.kind == Kind::kRefused && !e.budget.empty()) ++budget_refusals_;
}

prometheus::Counter& EpmdMetrics::resolve(CallInterface interface, std::size_t opnum,
                                          std::size_t status) {
  return calls_family_->Add(
      {{"interface", std::string(kInterfaceNames[static_cast<std::size_t>(interface)])},
       {"opnum", std::string(kOpnumNames[opnum])},
       {"status", std::string(status_name(status))}});
}

EpmdSnapshot EpmdMetrics::snapshot() const {
  EpmdSnapshot s;
  s.broker = broker_->port_broker().stats();
  s.policy_valid = broker_->port_broker().policy().valid;
  s.epm = epm_->stats();
  s.server = server_->stats();
  s.leases = leases_.size();
  s.sweep_removals = sweep_removals_;
  s.budget_refusals = budget_refusals_;
  return s;
}

bool attach_epm(runtime::Server& server, epm::EpmService& service,
                runtime::UnregisteredHook on_unregistered, EpmdMetrics* metrics) {
  if (metrics == nullptr)
    return runtime::attach_epm_service(server, service, std::move(on_unregistered));
  // runtime::attach_epm_service's two steps, with a Handler that counts and times.
  auto handler = [&service, metrics](runtime::IncomingCall& ctx, runtime::Responder r) {
    const auto start = std::chrono::steady_clock::now();
    const auto outcome =
        service.respond(ctx.opnum, ctx.stub, ctx.endian, runtime::caller_info(ctx));
    const auto took = std::chrono::steady_clock::now() - start;
    metrics->call(CallInterface::kEpm, ctx.opnum,
                  outcome ? status_label(trailing_status(*outcome, ctx.endian)) : kStatusFault,
                  took);
    runtime::send_outcome(std::move(r), outcome);
  };
  if (!server.add_interface(rpc::kEpmSyntax, std::move(handler), epm::kMaxRequestStub))
    return false;
  server.on_connection_closed(
      [&service, on_unregistered = std::move(on_unregistered)](std::uint64_t id) {
        const std::size_t removed = service.connection_closed(id);
        if (removed > 0 && on_unregistered) on_unregistered(id, removed);
      });
  return true;
}

bool attach_broker(runtime::Server& server, runtime::BrokerService& broker, EpmdMetrics* metrics) {
  if (metrics == nullptr) return broker.attach(server);
  // BrokerService::attach's two steps, with a Handler that counts and times. Every answered
  // broker call emits one BrokerEvent (broker_service.h), which sets the status; a call that
  // emitted none was answered with a fault.
  auto handler = [inner = broker.handler(), metrics](runtime::IncomingCall& ctx,
                                                     runtime::Responder r) {
    metrics->broker_status().reset();
    const auto start = std::chrono::steady_clock::now();
    inner(ctx, std::move(r));
    const auto took = std::chrono::steady_clock::now() - start;
    const auto& status = metrics->broker_status();
    metrics->call(CallInterface::kBroker, ctx.opnum, status ? status_label(*status) : kStatusFault,
                  took);
  };
  if (!server.add_interface(runtime::broker::broker_syntax(), std::move(handler),
                            runtime::broker::kMaxRequestStub))
    return false;
  server.on_connection_closed([&broker](std::uint64_t id) { broker.connection_closed(id); });
  return true;
}

}  // namespace rpcgate::epmd
