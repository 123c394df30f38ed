#pragma once
// Database CLIENT spans with the stable database semantic conventions
// (semconv v1.33+; docs/tracing-conventions.md):
//   name  "{db.operation.name} {db.collection.name}" (or "{op} {db.namespace}",
//         or "{db.system.name}")
//   db.system.name, db.operation.name, db.collection.name, db.namespace,
//   db.query.text (parameterized: values are never recorded), server.address,
//   server.port, db.operation.batch.size, db.response.returned_rows, and on
//   error db.response.status_code + error.type + ERROR status.

#include <cstdint>
#include <string_view>

#include "prism/tracing/span.h"
#include "prism/tracing/tracer.h"

namespace prism::plugin {

struct DbOperation {
  std::string_view system;          // db.system.name: "sqlite", "postgresql", "redis"
  std::string_view operation;       // db.operation.name: "SELECT", "BATCH INSERT"
  std::string_view collection;      // db.collection.name: table
  std::string_view db_namespace;    // db.namespace
  std::string_view query_text;      // db.query.text, with ? / $1 placeholders only
  std::string_view server_address;  // empty for embedded databases
  int server_port = 0;              // 0: not recorded
  int64_t batch_size = 0;           // db.operation.batch.size when >= 2
};

class DbSpan {
 public:
  // parent invalid: the thread's current span.
  DbSpan(const prism::tracing::Tracer& tracer, const prism::tracing::SpanContext& parent,
         const DbOperation& op);
  void SetReturnedRows(int64_t rows);
  // db.response.status_code (the database's own code, e.g. SQLSTATE "23505"
  // or SQLite's "5"), error.type, ERROR status with `message`.
  void SetError(std::string_view db_status_code, std::string_view message);
  void End() { span_.End(); }
  const prism::tracing::SpanContext& context() const { return span_.context(); }
  prism::tracing::Span& span() { return span_; }

 private:
  prism::tracing::Span span_;
};

}  // namespace prism::plugin
