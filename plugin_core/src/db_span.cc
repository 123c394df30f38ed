#include "prism/plugin/db_span.h"

#include <string>

namespace prism::plugin {

DbSpan::DbSpan(const prism::tracing::Tracer& tracer, const prism::tracing::SpanContext& parent,
               const DbOperation& op) {
  prism::tracing::StartSpanOptions o;
  o.kind = prism::tracing::SpanKind::kClient;
  if (parent.IsValid()) o.parent = parent;
  if (!tracer.enabled()) {
    span_ = tracer.StartSpan(op.system, std::move(o));
    return;
  }
  std::string name;
  std::string_view target = !op.collection.empty() ? op.collection : op.db_namespace;
  if (!op.operation.empty() && !target.empty()) {
    name.reserve(op.operation.size() + 1 + target.size());
    name.append(op.operation).append(" ").append(target);
  } else if (!op.operation.empty()) {
    name = op.operation;
  } else if (!target.empty()) {
    name = target;
  } else {
    name = op.system;
  }
  auto& a = o.attributes;
  a.reserve(9);
  a.push_back({"db.system.name", std::string(op.system)});
  if (!op.operation.empty()) a.push_back({"db.operation.name", std::string(op.operation)});
  if (!op.collection.empty()) a.push_back({"db.collection.name", std::string(op.collection)});
  if (!op.db_namespace.empty()) a.push_back({"db.namespace", std::string(op.db_namespace)});
  if (!op.query_text.empty()) a.push_back({"db.query.text", std::string(op.query_text)});
  if (!op.server_address.empty()) a.push_back({"server.address", std::string(op.server_address)});
  if (op.server_port > 0) a.push_back({"server.port", int64_t{op.server_port}});
  if (op.batch_size >= 2) a.push_back({"db.operation.batch.size", op.batch_size});
  span_ = tracer.StartSpan(name, std::move(o));
}

void DbSpan::SetReturnedRows(int64_t rows) {
  if (span_.IsRecording()) span_.SetAttribute("db.response.returned_rows", rows);
}

void DbSpan::SetError(std::string_view db_status_code, std::string_view message) {
  if (!span_.IsRecording()) return;
  if (!db_status_code.empty()) {
    span_.SetAttribute("db.response.status_code", db_status_code);
    span_.SetAttribute("error.type", db_status_code);
  } else {
    span_.SetAttribute("error.type", std::string_view("_OTHER"));
  }
  span_.SetStatus(prism::tracing::StatusCode::kError, message);
}

}  // namespace prism::plugin
